"""The policy of a loop: what trains, where it samples, and how each round's weights reach the sampler.

What it is for: `selfplay run` talks to its policy through one seam, `Policy`, with two implementations:
  - `LocalPolicy` (`[policy] mode = "local"`): the model that trains is the model that samples, in this process;
  - `ServedPolicy` (`mode = "served"`): trained here, published each round to an OpenAI-compatible server
    (vLLM's runtime LoRA API, or a restart command for full checkpoints), sampled through the `openai` backend;
  - `ColocatedPolicy` (`mode = "colocated"`): trained here, sampled by an in-process vLLM engine with a
    `LoRARequest` per round (written against vLLM's documented API; tested with a fake, never run on vLLM).
`build_policy(config, run_dir)` picks one from a `RunConfig`.
What it does not do: train (the loop calls `trainer` through `selfplay.jobs.algorithms`) or decide
rounds (`selfplay.jobs.loop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from selfplay.policy.local import LocalPolicy
from selfplay.policy.served import ColocatedPolicy, ServedPolicy

__all__ = ["ColocatedPolicy", "LocalPolicy", "Policy", "ServedPolicy", "build_policy"]


class Policy(Protocol):
    """What the loop needs from its policy. `model`/`tokenizer` are the trainable weights in this process."""

    model: Any
    tokenizer: Any
    round: int | None

    def checkpoint(self, round_: int) -> Path: ...
    def has_checkpoint(self, round_: int) -> bool: ...
    def load_initial(self) -> None: ...
    def load_round(self, round_: int) -> None: ...
    def save(self, round_: int) -> Path: ...
    async def prepare(self) -> None: ...           # checks before anything is spent (the server is there)
    def request_cache(self, store: Any) -> Any: ...  # the cache MeteredLLM reads (None: no request cache)
    async def serve(self) -> Any: ...              # an LLM backend answering with the current round's weights
    async def close(self) -> None: ...


def build_policy(config: Any, run_dir: str | Path) -> Any:
    """The policy a `RunConfig` describes."""
    source = config.model.path or config.model.name
    if config.policy.mode in ("served", "colocated"):
        kind = ServedPolicy if config.policy.mode == "served" else ColocatedPolicy
        return kind(config.policy, source, Path(run_dir), train_settings=config.train.settings,
                            seed=config.generate.seed, concurrency=config.generate.concurrency)
    return LocalPolicy(source, Path(run_dir), seed=config.generate.seed, hourly_usd=config.local.hourly_usd,
                       max_batch_rows=config.local.max_batch_rows)
