"""The control arm: each round trains the same number of steps on the seed rows alone, with SFT.

What it is for: `[loop] arm = "control"`: the baseline a self-improvement run must beat at equal compute
(`[loop] control_steps`: the steps per round, usually the learning arm's).
What it does not do: sample or verify anything in its rounds (its evaluation is the round's, as for every arm).
"""

from __future__ import annotations

from typing import Any

from selfplay.jobs.algorithms.sft import SFT


class Control(SFT):
    name = "control"

    def train_config(self, settings: dict[str, Any], **kwargs: Any):
        return SFT().train_config(settings, **kwargs)  # SFT's settings and defaults (settings.sft applies)

    async def improve(self, ctx: Any, round_: int) -> dict[str, Any]:
        steps = ctx.cfg.loop.control_steps or []
        max_steps = steps[round_ - 1] if round_ - 1 < len(steps) else None
        rows = list(ctx.tasks.seed_rows)
        ctx.write_rows(round_, rows)
        return {"train": ctx.train(round_, rows, self, max_steps=max_steps)}
