"""LLM access: one async chat interface (`LLM`), backends, K-sampling, and metering.

- `OpenAIBackend`: any OpenAI-compatible endpoint (imports only the `openai` SDK).
- `MeteredLLM`: cache + budget reservation + pricing around any backend.
- `sample_k`: K samples per prompt with `n=K` and top-ups.
Names are imported lazily, so `agents.llm.types` stays importable without the SDK or torch;
backends that need extras (`local`: torch/transformers; `vllm`) live in their own modules.
"""

from importlib import import_module

_EXPORTS = {
    "LLM": "agents.llm.base", "OpenAIBackend": "agents.llm.openai_backend", "MeteredLLM": "agents.llm.metered",
    "MemoryCache": "agents.llm.metered", "request_key": "agents.llm.metered", "RetryPolicy": "agents.llm.retry",
    "sample_k": "agents.llm.sampling", "BudgetExceeded": "agents.llm.types", "ChatResult": "agents.llm.types",
    "Choice": "agents.llm.types", "LLMError": "agents.llm.types", "SamplingParams": "agents.llm.types",
    "Usage": "agents.llm.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agents.llm' has no attribute {name!r}")
