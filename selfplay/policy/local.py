"""The trainable policy of a loop: one model in memory, checkpoints per round, served by the local backend.

What it is for: loading the starting model (a local checkpoint or a built-in tiny config), saving
`DIR/checkpoints/round-N` atomically (written beside, then renamed: a half-written checkpoint never
counts), reloading the newest complete one on resume, and handing the same in-memory model to the
`local` backend between rounds (its model id, and so every cache key, names the round).
What it does not do: train (the loop calls `trainer`), or serve remote backends (`selfplay.policy.served`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from selfplay.config.common import ModelSection
from selfplay.pipeline.llm import Engine, build_backend, load_policy_model


class LocalPolicy:
    def __init__(self, name_or_path: str, run_dir: Path, *, seed: int = 0, hourly_usd: float = 0.0,
                 max_batch_rows: int = 256) -> None:
        self.source = name_or_path
        self.dir = Path(run_dir) / "checkpoints"
        self.seed = seed
        self.hourly_usd = hourly_usd
        self.max_batch_rows = max_batch_rows
        self.model: Any = None
        self.tokenizer: Any = None
        self.round: int | None = None
        self.backend: Any = None

    def checkpoint(self, round_: int) -> Path:
        return self.dir / f"round-{round_}"

    def has_checkpoint(self, round_: int) -> bool:
        return (self.checkpoint(round_) / "config.json").is_file()

    def load_initial(self) -> None:
        self._set(*load_policy_model(self.source, seed=self.seed, source="[model] name/path"), round_=-1)

    def load_round(self, round_: int) -> None:
        if self.round == round_ and self.model is not None:
            return
        self._set(*load_policy_model(str(self.checkpoint(round_)), seed=self.seed, source="[model] name/path"),
                  round_=round_)

    def save(self, round_: int) -> Path:
        from transformers.utils import logging as hf_logging

        from trainer.models import save_model

        hf_logging.disable_progress_bar()
        final = self.checkpoint(round_)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        save_model(self.model, self.tokenizer, str(partial))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        self.round = round_
        return final

    def model_id(self) -> str:
        return f"{Path(self.source).name}@round-{self.round}"

    async def serve(self) -> Any:
        """The local backend over the in-memory model, named after the current round."""
        self.model.eval()
        if self.backend is None:
            # A wide batching window: the loop submits a whole chunk at once and wants it as ONE batch, so that
            # a resumed run computes every batch with the same shapes as an uninterrupted one (identical results).
            section = ModelSection(name=self.model_id(), backend="local", hourly_usd=self.hourly_usd)
            self.backend = build_backend(section, engine=Engine(weights=(self.model, self.tokenizer), seed=self.seed,
                                                                max_batch_rows=self.max_batch_rows, batch_window_s=0.25))
        else:
            await self.backend.reload((self.model, self.tokenizer), name=self.model_id())
        return self.backend

    async def prepare(self) -> None:
        """Nothing to check before spending: the model is in this process."""

    def request_cache(self, store: Any) -> None:
        """No request cache: a resumed local run recomputes the same batches (the candidate store holds results)."""
        return None

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()
            self.backend = None

    def _set(self, model: Any, tokenizer: Any, round_: int) -> None:
        self.model, self.tokenizer, self.round = model, tokenizer, round_

