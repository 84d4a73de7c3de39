"""The local backend passes the KV cache under the name the installed transformers takes (`cache` in 5.x, where
`past_key_values` is deprecated), so sampling raises no deprecation warning."""

import asyncio
import warnings

import pytest

pytest.importorskip("torch")

from agents.llm.local import LocalBackend  # noqa: E402
from agents.llm.local_sampling import _cache_argument  # noqa: E402
from agents.llm.types import SamplingParams  # noqa: E402
from tests.tiny_model import tiny_pair  # noqa: E402


def test_sampling_uses_the_current_cache_argument():
    import inspect

    model, tokenizer = tiny_pair()
    expected = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    assert _cache_argument(model) == expected
    llm = LocalBackend(model, tokenizer, name="tiny")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = asyncio.run(llm.chat([{"role": "user", "content": "hi"}],
                                      SamplingParams(max_tokens=4, temperature=1.0, n=3, seed=0)))
    asyncio.run(llm.aclose())
    assert len(result.choices) == 3
    assert not [w for w in caught if "past_key_values" in str(w.message)]
