"""`selfplay demo`: a tiny model teaches itself 2-digit addition on this CPU, against a control arm.

What it is for: the first thing a newcomer runs. It builds `tiny-llama` from config (random init,
no download), cold-starts it with SFT on a small seed set of worked examples, then runs rounds of
self-improvement with the `local` backend (sample K per training task, verify with
`verifiers.math`, keep the survivors, SFT). The control arm starts from the same cold-start
checkpoint and spends the same number of optimizer steps per round on the seed set alone. Both
arms are evaluated on the same held-out tasks every round. Deterministic for a given `--seed`.
What it does not do: anything the loop does not (it is two `selfplay run` configs and a table).
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from selfplay.jobs.loop import DONE, RunJob
from selfplay.report import html_page, markdown, plot
from selfplay.run_config import RunConfig
from selfplay.store import RunStore
from selfplay.store.export import write_json


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
                   progress: Any = None) -> dict[str, Any]:
    out = Path(out)
    improve_dir, control_dir = out / "self_improve", out / "control"
    improve = await RunJob(demo_config(seed, "self_improve", rounds, quick=quick), improve_dir,
                           title="demo: self-improvement", progress=progress).run()
    steps = [int(r.get("train", {}).get("steps", 0) or 0) for r in improve[1:]]
    _share_cold_start(improve_dir, control_dir, improve[0])
    control = await RunJob(demo_config(seed, "control", rounds, control_steps=steps, quick=quick), control_dir,
                           title="demo: control (seed set only)", progress=progress).run()
    result = {"seed": seed, "cold_start": improve[0]["eval_pass@1"],
              "self_improve": [r["eval_pass@1"] for r in improve[1:]],
              "control": [r["eval_pass@1"] for r in control[1:]],
              "self_improve_pass@k": [r["eval_pass@k"] for r in improve],
              "control_pass@k": [r["eval_pass@k"] for r in control],
              "train_steps_per_round": steps,
              "seconds": round(sum(r.get("seconds", 0) for r in improve + control[1:]), 1)}
    write_json(result, out / "demo.json")
    _write_demo_report(out, improve, control)
    return {"result": result, "self_improve": improve, "control": control}


def _share_cold_start(improve_dir: Path, control_dir: Path, round0: dict[str, Any]) -> None:
    """Both arms start from the same cold-start checkpoint (copied, not retrained)."""
    target = control_dir / "checkpoints" / "round-0"
    if not (target / "config.json").is_file():
        shutil.copytree(improve_dir / "checkpoints" / "round-0", target, dirs_exist_ok=True)
    with RunStore(control_dir) as store:
        if not any(r["round"] == 0 and r["phase"] == DONE for r in store.get_rounds()):
            store.put_round(0, DONE, {**{k: v for k, v in round0.items() if k not in ("round", "phase")},
                                      "arm": "control", "checkpoint": str(target)})


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


def _write_demo_report(out: Path, improve: list[dict[str, Any]], control: list[dict[str, Any]]) -> None:
    table = comparison_table(improve, control)
    md = ["# selfplay demo", "", "```", table, "```", "", markdown(improve, "self-improvement arm"), "",
          markdown(control, "control arm (same steps on the seed set)")]
    (out / "report.md").write_text("\n".join(md))
    both = [{"round": a["round"], "self_improve": a["eval_pass@1"], "control": b["eval_pass@1"]}
            for a, b in zip(improve, control)]
    image = plot(both, [("self_improve", "self-improvement"), ("control", "control (seed set only)")],
                  "held-out pass@1")
    page = html_page(improve, "selfplay demo: self-improvement arm").replace(
        "<body>", f"<body><h1>selfplay demo</h1><img alt='pass@1 of both arms' src='data:image/png;base64,{image}'>"
                  f"<pre>{html.escape(table)}</pre>", 1)
    (out / "report.html").write_text(page)
