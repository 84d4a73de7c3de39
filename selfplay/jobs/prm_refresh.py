"""The PRM as the loop's verifier: its check per round, its relabel-and-retrain each round, its best-of-N.

What it is for: `verifier = "prm"` in `selfplay run`, configured by the `[prm]` section
(`selfplay.config.run.LoopPRMSection`, the `selfplay generate` PRMSection plus the loop's keys):
- the check: round R's training candidates are verified by the PRM in force after round R-1 (the [prm] path,
  or with `retrain = "each_round"` run_dir/prm/round-(R-1)); its aggregated score is the verdict's score and
  pass = score >= pass_threshold (`verifiers.prm.model.ModelPRM`);
- the held-out evaluation is by the tasks' reference answers (`REFERENCE`), never by the PRM the loop
  selects with, so pass@1, the guards and the verifier audit (`selfplay.pipeline.monitors.audit`, on the PRM-accepted
  rows) stay independent of it;
- relabel and retrain (`retrain = "each_round"`): after round R's candidates are verified, each one is
  labelled by its task's reference answer with `verifiers.prm.labels` (the candidate is itself one completion
  from each of its step prefixes: every prefix gets the Math-Shepherd hard label of that one rollout, the last
  step the candidate's own verdict; exact for one-step answers, an outcome label for longer ones), the previous
  PRM is fine-tuned on those rows with `trainer.prm.train_prm` and saved as run_dir/prm/round-R (written beside,
  then renamed, like the policy's checkpoints). A kill before the rename retrains from the same stored inputs,
  so the resumed run ends with the same PRM; round R+1 verifies with it;
- best-of-N per round: for each eval task the PRM in force at the end of the round picks the highest-scored of
  its K eval samples (ties: the lowest sample index); accuracy = fraction of eval tasks whose pick is right by
  the reference (`best_of_n`), beside pass@1 and majority vote of the same samples.
What it does not do: label by rollouts inside the loop (label offline with `selfplay prm-label`), price the
PRM's compute (its time counts in the round's seconds only), or train the policy (`selfplay.jobs.loop`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from selfplay.core.crashpoints import crash_point
from selfplay.core.errors import UserError
from selfplay.core.candidate import Candidate
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task
from selfplay.pipeline.verify import prm_check, verify_candidates
from verifiers.prm.labels import final_step_label, hard_label, prm_row
from verifiers.prm.steps import split_steps
from verifiers.verdict import Verdict

REFERENCE = "auto"       # the verifier of a PRM loop's eval samples and labels: the task's reference (by its kind)
PRM_VERIFIER = "prm"     # the store's verdict name of the PRM's verdicts
REFRESH_FILE = "refresh.json"  # written last inside a retrained PRM directory: what it was trained on


# ---- pure halves: labels and best-of-N ---------------------------------------------------------------------------
def candidate_steps(candidate: Candidate, separator: str | None) -> list[str]:
    """The steps the PRM scores for a candidate (as `selfplay.pipeline.verify.prm_check`: its own, else split)."""
    return list(candidate.steps or split_steps(candidate.final_answer or "", separator))


def outcome_row(prompt: Any, steps: Sequence[str], verdict: Verdict) -> dict[str, Any] | None:
    """The PRM row of one candidate labelled by its reference verdict (None: unknown or no steps).

    The candidate is one completion from each of its prefixes, so each earlier step gets `hard_label` of that
    single rollout, and the last step the candidate's own label (`final_step_label`)."""
    labels = [hard_label([verdict])] * (len(steps) - 1) + [final_step_label(verdict)] if steps else []
    return prm_row(prompt, steps, labels)


def best_of_n(prm_items: Sequence[Candidate], reference: Sequence[Candidate], task_ids: Sequence[str]) -> dict[str, Any]:
    """Per eval task, the PRM's top-scored sample (ties: lowest index) judged by the reference verdicts.

    A task none of whose samples the PRM could score, or whose pick has no reference verdict, counts as wrong."""
    right = {(c.task_id, c.sample_index): c.passed for c in reference if c.verifier_error is None}
    groups: dict[str, list[Candidate]] = {}
    for item in prm_items:
        if item.verifier_error is None:
            groups.setdefault(item.task_id, []).append(item)
    correct = 0
    for task_id in task_ids:
        group = groups.get(task_id)
        if group:
            pick = max(group, key=lambda c: (c.score, -c.sample_index))
            correct += bool(right.get((task_id, pick.sample_index)))
    return {"best_of_n": correct / len(task_ids) if task_ids else 0.0, "picked": sum(1 for t in task_ids if t in groups)}


# ---- the loop's PRM ------------------------------------------------------------------------------------------------
class LoopPRM:
    """The PRM of one `selfplay run`: which PRM verifies round R, its retraining, its best-of-N (module docstring)."""

    eval_verifier = REFERENCE

    def __init__(self, config: Any, run_dir: Path, phase: Callable[[str, int], Any] | None = None) -> None:
        self.section = config.prm
        self.seed = config.generate.seed
        self.concurrency = config.generate.verify_concurrency
        self.dir = Path(run_dir) / "prm"
        self.phase = phase or (lambda description, total: (lambda n=1: None))
        self._models: dict[str, Any] = {}
        self._trained: dict[int, dict[str, Any]] = {}

    @property
    def retrains(self) -> bool:
        return self.section.retrain == "each_round"

    def round_dir(self, round_: int) -> Path:
        return self.dir / f"round-{round_}"

    def path_after(self, round_: int) -> str:
        """The PRM in force at the end of round `round_` (the one that verifies round `round_ + 1`)."""
        if self.retrains and round_ >= 1:
            return str(self.round_dir(round_))
        return self.section.path

    def check(self, round_: int):
        """The check of round `round_`'s training candidates: the PRM in force after the previous round."""
        return prm_check(self._model(self.path_after(round_ - 1)))

    def _model(self, path: str) -> Any:
        if path not in self._models:
            from verifiers.prm.model import ModelPRM

            options: dict[str, Any] = {"pass_threshold": self.section.pass_threshold,
                                       "split_separator": self.section.step_separator}
            if self.section.aggregation:
                options["aggregation"] = self.section.aggregation
            try:
                model = ModelPRM.load(path, device="cpu", **options)
            except (FileNotFoundError, ValueError, OSError) as exc:
                raise UserError(f"[prm] path: {exc}") from exc
            self._models.clear()  # one PRM in memory at a time
            self._models[path] = model
        return self._models[path]

    # --- after round R's candidates are verified ----------------------------------------------------------------
    async def refresh(self, round_: int, store: RunStore, records: list[Candidate], tasks: dict[str, Task],
                      executor: Any) -> dict[str, Any]:
        """Retrain (retrain = "each_round"): label the round's candidates by the reference and fine-tune the PRM."""
        if not self.retrains:
            return {}
        final = self.round_dir(round_)
        if (final / REFRESH_FILE).is_file():  # retrained before a kill: the same PRM
            self._trained[round_] = json.loads((final / REFRESH_FILE).read_text())
            return self._trained[round_]
        verified = await verify_candidates(store, round_, records, tasks, REFERENCE, concurrency=self.concurrency,
                                           executor=executor)
        rows = self.label_rows(verified, tasks)
        info = self._retrain(round_, rows)
        self._trained[round_] = info
        return info

    def label_rows(self, verified: list[Candidate], tasks: dict[str, Task]) -> list[dict[str, Any]]:
        """PRM rows of the verified candidates, labelled by their reference verdicts."""
        rows = []
        for cand in verified:
            if not cand.ok or cand.verdict is None:
                continue
            row = outcome_row(tasks[cand.task_id].prompt, candidate_steps(cand, self.section.step_separator),
                              cand.verdict)
            if row is not None:
                rows.append(row)
        return rows

    def _retrain(self, round_: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        previous = self.path_after(round_ - 1)
        final = self.round_dir(round_)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        positive = sum(float(label) for row in rows for label in row["labels"])
        steps = sum(len(row["labels"]) for row in rows)
        info: dict[str, Any] = {"from": previous, "trained_on": len(rows), "steps_labelled": steps,
                                "positive_step_fraction": positive / steps if steps else None}
        if rows:
            self.phase(f"round {round_} retrain the PRM on {len(rows)} labelled candidates", 1)
            info["train"] = self._train(previous, rows, str(partial))
        else:  # nothing labelled: the previous PRM carries over unchanged
            shutil.rmtree(partial)
            shutil.copytree(previous, partial)
            info["train"] = {"skipped": "no labelled candidates"}
        crash_point(f"round{round_}:prm_trained")
        (partial / REFRESH_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        self._models.pop(str(final), None)
        return info

    def _train(self, previous: str, rows: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
        import dataclasses

        from trainer.config import TrainConfig
        from trainer.prm import CONFIG_FILE, load_prm_module, save_prm, train_prm

        max_length = json.loads((Path(previous) / CONFIG_FILE).read_text()).get("max_length", 1024)
        settings = {"max_length": max_length, "seed": self.seed, **self.section.settings}
        config = TrainConfig(**settings)
        module, tokenizer, separator = load_prm_module(previous, seed=config.seed)
        metrics = train_prm(module, tokenizer, rows, config, out_dir, separator or "\n\n", source="round candidates")
        save_prm(module, tokenizer, out_dir, separator or "\n\n", config.max_length)
        keep = ("steps", "final_loss", "examples", "skipped_too_long", "steps_labelled", "train_seconds")
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        return {**{k: metrics[k] for k in keep if k in metrics}, "settings": {k: v for k, v in settings.items()
                                                                               if k in fields}}

    # --- after round R's eval samples are checked by the reference ----------------------------------------------
    async def evaluate(self, round_: int, store: RunStore, records: list[Candidate], reference: list[Candidate],
                       metrics: dict[str, Any], tasks: list[Task], executor: Any) -> dict[str, Any]:
        """The round record's "prm": best-of-N of the PRM in force now on the eval samples, pass@1, majority."""
        by_id = {t.id: t for t in tasks}
        path = self.path_after(round_)
        scored = await verify_candidates(store, round_, records, by_id, PRM_VERIFIER, concurrency=self.concurrency,
                                         executor=executor, check=prm_check(self._model(path)))
        found = best_of_n([c for c in scored if c.verdict is not None], reference, [t.id for t in tasks])
        trained = self._trained.get(round_)
        if trained is None and self.retrains and (self.round_dir(round_) / REFRESH_FILE).is_file():
            trained = json.loads((self.round_dir(round_) / REFRESH_FILE).read_text())
        return {**found, "pass@1": metrics.get("eval_pass@1"), "majority": metrics.get("eval_maj@k"), "path": path,
                "trained_on": (trained or {}).get("trained_on", 0), "retrain": self.section.retrain}
