"""`selfplay demo`: a tiny model teaches itself 2-digit addition on this CPU, arm against arm.

What it is for: the first thing a newcomer runs. It builds `tiny-llama` from config (random init,
no download), cold-starts it with SFT on a small seed set of worked examples, then runs rounds of
self-improvement with the `local` backend (sample K per training task, verify with
`verifiers.math`, keep the survivors, train). The arms (`--arms`, default `sft,control`) differ only
in how a round learns: `sft` (rejection sampling), `dpo` and `grpo` (`[train] algorithm`, each with
its own defaults), `majority` (pseudo-labels: SFT on the maj@K answer, no reference), and `control`
(the same optimizer steps per round on the seed set alone). Every arm starts from the same
cold-start checkpoint (trained once, copied) and is evaluated on the same held-out tasks every
round; `demo.json` and the report put them side by side with samples, optimizer steps, wall time
and cost per arm. Deterministic for a given `--seed`.
What it does not do: anything the loop does not (each arm is one `selfplay run` config).
"""

from __future__ import annotations

import html
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.jobs.loop import DONE, RunJob
from selfplay.pipeline.report import html_page, markdown, plot
from selfplay.config.run import RunConfig
from selfplay.core.store import RunStore
from selfplay.core.files import write_json


@dataclass(frozen=True)
class Arm:
    """One arm of the demo: its label, its run directory, and how its loop config differs from the SFT arm's."""

    label: str
    directory: str
    loop_arm: str = "self_improve"                  # `[loop] arm` ("control": the seed rows alone)
    algorithm: str | None = None                    # `[train] algorithm` with its own defaults (no SFT-only keys)
    rule: str | None = None                         # `[select] rule`


# the demo's arms, in the order they run (the SFT arm keeps its historical directory name)
ARMS: dict[str, Arm] = {
    "sft": Arm("rejection-sampling SFT", "self_improve"),
    "dpo": Arm("DPO", "dpo", algorithm="dpo"),
    "grpo": Arm("GRPO", "grpo", algorithm="grpo"),
    "majority": Arm("majority pseudo-labels (SFT)", "majority", rule="majority"),
    "control": Arm("control (seed set only)", "control", loop_arm="control"),
}
DEFAULT_ARMS = ("sft", "control")
ARM_LABELS = {name: arm.label for name, arm in ARMS.items()}
CONTROL = "control"   # the arm that spends the learning arms' steps on the seed set
REFERENCE_ARM = "sft"  # the arm whose steps the control spends, whose figures demo.json reports as self_improve


def arm_dir(arm: str) -> str:
    """The arm's run directory under the demo's --out."""
    return ARMS[arm].directory


def parse_arms(text: str) -> tuple[str, ...]:
    """`--arms sft,dpo,control` -> the arms in the demo's order; ValueError naming an unknown or repeated arm."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARMS]
    if unknown or not names or len(set(names)) != len(names):
        problem = f"unknown arm(s) {', '.join(unknown)}" if unknown else "empty or repeated arm names"
        raise ValueError(f"--arms {text!r}: {problem}; choose from {','.join(ARMS)} (comma-separated, each once)")
    return tuple(name for name in ARMS if name in names)


def arm_config(seed: int, arm: str, rounds: int = 4, control_steps: list[int] | None = None,
               quick: bool = False) -> RunConfig:
    """The demo's loop for one arm: `demo_config` with only the arm's own keys changed (algorithm or rule)."""
    spec = ARMS[arm]
    values = demo_config(seed, spec.loop_arm, rounds, control_steps, quick).model_dump(mode="json", exclude_unset=True)
    if spec.algorithm:  # the algorithm's own defaults (selfplay.jobs.algorithms); no SFT-only keys
        values["train"]["algorithm"] = spec.algorithm
        values["select"] = {}
        values["train"].pop("replay_seed", None)
    if spec.rule:
        values["select"]["rule"] = spec.rule
    return RunConfig.model_validate(values)


def demo_config(seed: int, arm: str = "self_improve", rounds: int = 4, control_steps: list[int] | None = None,
                quick: bool = False) -> RunConfig:
    """The demo's loop, sized to finish in minutes on 2 CPU cores (one torch thread: steadier than two there).

    A small seed set (300 solved examples, 300 SFT steps) makes a weak cold start (~8% held-out pass@1);
    each round samples K=8 answers for 1000 fresh training problems, keeps up to two verified answers
    per problem, and trains 100 steps on them plus the seed set. The control arm trains the same number
    of steps on the seed set alone, and overfits it.
    """
    return RunConfig.model_validate({
        "model": {"name": "tiny-llama", "backend": "local"},
        "local": {"hourly_usd": 0.10, "max_batch_rows": 512, "threads": 1},
        "tasks": {"builtin": "addition", "digits": 2, "style": "short", "n_seed": 60 if quick else 300,
                  "n_train": 64 if quick else 4000, "n_eval": 32 if quick else 200, "per_round": 32 if quick else 1000},
        "generate": {"k": 4 if quick else 8, "max_tokens": 6, "temperature": 1.0, "seed": seed},
        "select": {"rule": "rejection", "cap_per_task": 2},
        "train": {"algorithm": "sft", "replay_seed": True, "cold_start_steps": 4 if quick else 300,
                  "settings": {"lr": 1e-3, "batch_size": 64, "warmup_steps": 0, "max_steps": 4 if quick else 100,
                               "group_by_length": False}},
        "eval": {"k": 4 if quick else 8, "temperature": 1.0},
        "loop": {"rounds": rounds, "arm": arm, "control_steps": control_steps},
    })


async def run_demo(out: str | Path, *, seed: int = 0, rounds: int = 4, quick: bool = False,
                   progress: Any = None, arms: tuple[str, ...] = DEFAULT_ARMS) -> dict[str, Any]:
    """Run every arm (the first one trains the cold start, the others copy it); write demo.json and the report."""
    out = Path(out)
    learners = [arm for arm in arms if arm != CONTROL]
    runs: dict[str, list[dict[str, Any]]] = {}
    walls: dict[str, float] = {}
    first = None
    for arm in learners + ([CONTROL] if CONTROL in arms else []):
        steps = None
        if arm == CONTROL and learners:  # the control spends the steps of the SFT arm (else of the first arm)
            steps = train_steps(runs[REFERENCE_ARM if REFERENCE_ARM in runs else learners[0]])
        config = arm_config(seed, arm, rounds, control_steps=steps, quick=quick)
        if first is not None:
            _share_cold_start(out / arm_dir(first), out / arm_dir(arm), runs[first][0], config.loop.arm)
        started = time.monotonic()
        runs[arm] = await RunJob(config, out / arm_dir(arm), title=f"demo: {ARM_LABELS[arm]}", progress=progress).run()
        walls[arm] = round(time.monotonic() - started, 1)
        first = first or arm
    result = demo_result(seed, runs, walls)
    write_json(result, out / "demo.json")
    _write_demo_report(out, runs, result)
    return {"result": result, "arms": runs, "self_improve": runs.get(REFERENCE_ARM, []), "control": runs.get(CONTROL, [])}


def train_steps(rounds: list[dict[str, Any]]) -> list[int]:
    """Optimizer steps of rounds 1..R (a rejected round still spent its steps)."""
    return [int((r.get("train") or {}).get("steps", 0) or 0) for r in rounds[1:]]


def arm_summary(rounds: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """One arm's figures: pass@1/pass@K per round, samples and optimizer steps per round, cost, wall time, $/point."""
    cold, final = rounds[0]["eval_pass@1"], rounds[-1]["eval_pass@1"]
    cost = round(sum(r.get("cost_usd", 0.0) or 0.0 for r in rounds[1:]), 8)  # the ledger: sampling + evaluation
    gain = (final - cold) * 100
    return {"pass@1": [r["eval_pass@1"] for r in rounds[1:]], "pass@k": [r["eval_pass@k"] for r in rounds[1:]],
            "samples_per_round": [int(r.get("samples", 0) or 0) for r in rounds[1:]],
            "steps_per_round": train_steps(rounds),
            "rejected_rounds": [r["round"] for r in rounds if r.get("rejected")],
            "cost_usd": cost, "seconds": round(sum(r.get("seconds", 0) for r in rounds[1:]), 1), "wall_s": wall_s,
            "points_gained": round(gain, 1), "usd_per_point": float(f"{cost / gain:.3g}") if gain > 0 else None}


def demo_result(seed: int, runs: dict[str, list[dict[str, Any]]], walls: dict[str, float]) -> dict[str, Any]:
    """demo.json: `{"cold_start", "arms": {arm: [pass@1 per round]}, "control": [...]}`, per-arm figures, and the
    keys of the two-arm demo (`self_improve` = the SFT arm) for readers of earlier versions."""
    first = next(iter(runs.values()))
    summaries = {arm: arm_summary(rounds, walls.get(arm, 0.0)) for arm, rounds in runs.items()}
    result: dict[str, Any] = {"seed": seed, "cold_start": first[0]["eval_pass@1"],
                              "cold_start_seconds": first[0].get("seconds", 0),
                              "arms": {arm: s["pass@1"] for arm, s in summaries.items() if arm != CONTROL},
                              "per_arm": summaries}
    if CONTROL in runs:
        result["control"] = summaries[CONTROL]["pass@1"]
        result["control_pass@k"] = [r["eval_pass@k"] for r in runs[CONTROL]]
    if REFERENCE_ARM in runs:
        result["self_improve"] = summaries[REFERENCE_ARM]["pass@1"]
        result["self_improve_pass@k"] = [r["eval_pass@k"] for r in runs[REFERENCE_ARM]]
        result["train_steps_per_round"] = summaries[REFERENCE_ARM]["steps_per_round"]
    result["seconds"] = round(first[0].get("seconds", 0) + sum(s["seconds"] for s in summaries.values()), 1)
    return result


def _share_cold_start(source_dir: Path, target_dir: Path, round0: dict[str, Any], arm: str) -> None:
    """Every arm starts from the same cold-start checkpoint (copied, not retrained)."""
    target = target_dir / "checkpoints" / "round-0"
    if not (target / "config.json").is_file():
        shutil.copytree(source_dir / "checkpoints" / "round-0", target, dirs_exist_ok=True)
    with RunStore(target_dir) as store:
        if not any(r["round"] == 0 and r["phase"] == DONE for r in store.get_rounds()):
            store.put_round(0, DONE, {**{k: v for k, v in round0.items() if k not in ("round", "phase")},
                                      "arm": arm, "checkpoint": str(target)})


def demo_table(outcome: dict[str, Any]) -> str:
    """The two-arm table for `sft,control` (as it always was), else one pass@1 column per arm plus a summary."""
    runs = outcome["arms"]
    if tuple(runs) == DEFAULT_ARMS:
        return comparison_table(runs[REFERENCE_ARM], runs[CONTROL])
    return arms_table(runs, outcome["result"])


def demo_summary_line(result: dict[str, Any]) -> str:
    """`cold start 0.072 -> self-improvement 0.940 vs control 0.219 (held-out pass@1)`, one `arm final` per arm."""
    finals = [f"{'self-improvement' if arm == REFERENCE_ARM else arm} {values[-1]:.3f}"
              for arm, values in result["arms"].items() if values]
    control = f" vs control {result['control'][-1]:.3f}" if result.get("control") else ""
    return f"cold start {result['cold_start']:.3f} -> {', '.join(finals) or 'no arm'}{control} (held-out pass@1)"


def arms_table(runs: dict[str, list[dict[str, Any]]], result: dict[str, Any]) -> str:
    """pass@1 per round, one column per arm; then samples and optimizer steps per round, gain, wall time, cost."""
    names, summaries = list(runs), result["per_arm"]
    head = f"{'round':>5} | " + " ".join(f"{name + ' pass@1':>15}" for name in names)
    lines = [head, "-" * len(head)]
    for i, record in enumerate(next(iter(runs.values()))):
        cells = []
        for name in names:
            r = runs[name][i] if i < len(runs[name]) else {}
            mark = "*" if r.get("rejected") else " "
            cells.append(f"{r.get('eval_pass@1', float('nan')):>14.3f}{mark}")
        lines.append(f"{record['round']:>5} | " + " ".join(cells))
    lines += ["", f"{'arm':>8} | {'samples/round':>13} {'steps/round':>15} {'gain (pts)':>10} {'round s':>7} "
                  f"{'wall s':>7} {'cost USD':>9} {'USD/point':>10}"]
    for name in names:
        s = summaries[name]
        per_point = f"{s['usd_per_point']:.2e}" if s["usd_per_point"] is not None else "-"
        lines.append(f"{name:>8} | {_per_round(s['samples_per_round']):>13} {_per_round(s['steps_per_round']):>15} "
                     f"{s['points_gained']:>+10.1f} {s['seconds']:>7.0f} {s['wall_s']:>7.0f} {s['cost_usd']:>9.5f} "
                     f"{per_point:>10}")
    lines.append(f"round s: rounds 1..R as recorded (resume-safe); wall s: this invocation (a resumed arm: only what "
                 f"it redid), {names[0]}'s with the shared cold start ({result['cold_start_seconds']:.0f} s); "
                 "cost USD: the ledger's sampling and evaluation compute of rounds 1..R")
    if any(s["rejected_rounds"] for s in summaries.values()):
        lines.append("* round rejected by the guards: the previous kept policy's pass@1 is shown")
    return "\n".join(lines)


def _per_round(values: list[int]) -> str:
    return str(values[0]) if values and len(set(values)) == 1 else "/".join(map(str, values)) or "-"


def comparison_table(improve: list[dict[str, Any]], control: list[dict[str, Any]]) -> str:
    head = (f"{'round':>5} | {'self-improve pass@1':>19} {'pass@K':>6} {'yield':>6} {'samples':>7} {'tokens':>7} "
            f"{'sec':>5} | {'control pass@1':>14} {'pass@K':>6} {'sec':>5}")
    lines = [head, "-" * len(head)]
    for a, b in zip(improve, control):
        yield_ = f"{a['yield']:.3f}" if a.get("yield") is not None else "-"
        lines.append(f"{a['round']:>5} | {a['eval_pass@1']:>19.3f} {a['eval_pass@k']:>6.3f} {yield_:>6} "
                     f"{a.get('samples') or 0:>7} {a.get('completion_tokens') or 0:>7} {a.get('seconds', 0):>5.0f} | "
                     f"{b['eval_pass@1']:>14.3f} {b['eval_pass@k']:>6.3f} {b.get('seconds', 0):>5.0f}")
    return "\n".join(lines)


def _write_demo_report(out: Path, runs: dict[str, list[dict[str, Any]]], result: dict[str, Any]) -> None:
    table = demo_table({"arms": runs, "result": result})
    md = ["# selfplay demo", "", "```", table, "```", ""]
    md += [markdown(rounds, f"{ARM_LABELS[arm]} arm") + "\n" for arm, rounds in runs.items()]
    (out / "report.md").write_text("\n".join(md))
    first = next(iter(runs.values()))
    points = [{"round": r["round"], **{arm: rows[i]["eval_pass@1"] for arm, rows in runs.items() if i < len(rows)}}
              for i, r in enumerate(first)]
    image = plot(points, [(arm, ARM_LABELS[arm]) for arm in runs], "held-out pass@1")
    page = html_page(first, f"selfplay demo: {ARM_LABELS[next(iter(runs))]} arm").replace(
        "<body>", f"<body><h1>selfplay demo</h1><img alt='pass@1 of every arm' src='data:image/png;base64,{image}'>"
                  f"<pre>{html.escape(table)}</pre>", 1)
    (out / "report.html").write_text(page)
