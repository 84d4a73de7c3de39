"""LLM access: one async chat interface (`LLM`), backends, K-sampling, and metering.

- `OpenAIBackend`: any OpenAI-compatible endpoint (imports only the `openai` SDK).
- `MeteredLLM`: cache + budget reservation + pricing around any backend.
- `sample_k`: K samples per prompt with `n=K` and top-ups.
Backends that need extras (`local`: torch/transformers; `vllm`) are imported from their own modules.
"""

from agents.llm.base import LLM
from agents.llm.metered import MemoryCache, MeteredLLM, request_key
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.retry import RetryPolicy
from agents.llm.sampling import sample_k
from agents.llm.types import BudgetExceeded, ChatResult, Choice, LLMError, SamplingParams, Usage

__all__ = ["LLM", "OpenAIBackend", "MeteredLLM", "MemoryCache", "RetryPolicy", "sample_k", "request_key",
           "BudgetExceeded", "ChatResult", "Choice", "LLMError", "SamplingParams", "Usage"]
