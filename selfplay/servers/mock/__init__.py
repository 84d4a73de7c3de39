"""A mock OpenAI-compatible LLM endpoint for offline tests: scripted replies, exact usage, injected faults.

What it is for: running `selfplay generate` (or any OpenAI client) against a server whose answers come
from a TOML/JSON script (`script`), deterministic under any concurrency (`matching`), with documented token
counts (`tokens`), deterministic faults that retries get through (`faults`), and stats (`stats`).
Start it with `selfplay mock-server` (see `selfplay.cli.mock_server`) or from tests with
`selfplay.servers.testing.MockServer` / the `mock_llm` pytest fixture. Docs: docs/mock-server.md.
What it does NOT do: imitate any real model, tokenizer or streaming; it imports nothing of ours but
`selfplay.core.errors`.
"""

from selfplay.servers.mock.app import MockConfig, build_app
from selfplay.servers.mock.faults import FAULT_KINDS, FaultRates
from selfplay.servers.mock.script import Script, ScriptError, load_script, parse_script, script_from_data


def default_script() -> Script:
    """The script used when none is given: arithmetic (a + b, a * b) with \\boxed answers, and a fallback."""
    from importlib import resources

    text = resources.files(__name__).joinpath("default_script.toml").read_text(encoding="utf-8")
    return parse_script(text, "toml", source="selfplay/servers/mock/default_script.toml")


__all__ = ["FAULT_KINDS", "FaultRates", "MockConfig", "Script", "ScriptError", "build_app", "default_script",
           "load_script", "parse_script", "script_from_data"]
