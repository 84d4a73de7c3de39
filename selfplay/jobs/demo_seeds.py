"""`selfplay demo --seeds 0,1,2`: every arm of the demo at several seeds, a table of mean and spread per arm, one plot.

What it is for: one seed says little (issue 27: GRPO cleared its bars at the seed its defaults were tuned on and not
at seed 1). Each seed is a whole `selfplay.jobs.demo.run_demo` in `OUT/seed-S` (its own cold start, tasks and
sampling; re-running resumes), then `OUT/seeds.json`, `OUT/seeds.md` and `OUT/seeds.html` (with one plot: mean
held-out pass@1 per round and arm, the bars the spread across seeds) summarise them.
What it does not do: run the arms (`selfplay.jobs.demo`), or test significance: with 3 seeds the spread is what to
read, and a difference inside it is not a result.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

from selfplay.core.files import write_json
from selfplay.jobs.demo import ARM_LABELS, DEFAULT_ARMS, run_demo
from selfplay.pipeline.report import png_base64


def parse_seeds(text: str) -> tuple[int, ...]:
    """`"0,1,2"` -> (0, 1, 2); ValueError naming a bad or repeated seed."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--seeds {text!r}: comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give each seed once, e.g. 0,1,2")
    return seeds


async def run_seeds(out: str | Path, *, seeds: tuple[int, ...], rounds: int = 4, quick: bool = False,
                    progress: Any = None, arms: tuple[str, ...] = DEFAULT_ARMS) -> dict[str, Any]:
    """Every arm at every seed (`OUT/seed-S`), then the summary across seeds (`seeds.json`, `seeds.md`, `seeds.html`)."""
    out = Path(out)
    results = {}
    for seed in seeds:
        outcome = await run_demo(out / f"seed-{seed}", seed=seed, rounds=rounds, quick=quick, progress=progress,
                                 arms=arms)
        results[seed] = outcome["result"]
    summary = seeds_summary(results)
    write_json(summary, out / "seeds.json")
    table = seeds_table(summary)
    (out / "seeds.md").write_text(f"# selfplay demo, seeds {', '.join(map(str, seeds))}\n\n```\n{table}\n```\n")
    image = seeds_plot(summary)
    (out / "seeds.html").write_text(
        f"<html><body><h1>selfplay demo, seeds {html.escape(', '.join(map(str, seeds)))}</h1>"
        f"<img alt='mean held-out pass@1 per arm' src='data:image/png;base64,{image}'>"
        f"<pre>{html.escape(table)}</pre></body></html>")
    return summary


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    return {"mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4), "max": round(max(values), 4)}


def _per_round(result: dict[str, Any], arm: str) -> list[float]:
    return [result["cold_start"], *result["per_arm"][arm]["pass@1"]]


def seeds_summary(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per arm across seeds: final pass@1, gain over the seed's cold start and over its control (points), and the
    pass@1 of every round (round 0: the cold start), each as mean / sd / min / max, with the per-seed values."""
    seeds = list(results)
    arms = [arm for arm in next(iter(results.values()))["per_arm"] if all(arm in r["per_arm"] for r in results.values())]
    summary: dict[str, Any] = {"seeds": seeds, "cold_start": spread([r["cold_start"] for r in results.values()]),
                               "arms": {}}
    for arm in arms:
        finals = [results[s]["per_arm"][arm]["pass@1"][-1] for s in seeds]
        gains = [(f - results[s]["cold_start"]) * 100 for s, f in zip(seeds, finals)]
        rounds = list(zip(*(_per_round(results[s], arm) for s in seeds)))
        entry = {"final": spread(finals), "gain_points": spread(gains), "per_seed": dict(zip(map(str, seeds), finals)),
                 "rounds": [spread(list(values)) for values in rounds]}
        if "control" in arms and arm != "control":
            entry["over_control_points"] = spread(
                [(f - results[s]["per_arm"]["control"]["pass@1"][-1]) * 100 for s, f in zip(seeds, finals)])
        summary["arms"][arm] = entry
    return summary


def seeds_table(summary: dict[str, Any]) -> str:
    """One line per arm: final pass@1 mean ± sd (min..max), the gains in points, and each seed's final."""
    seeds = summary["seeds"]
    cold = summary["cold_start"]
    head = (f"{'arm':>8} | {'final pass@1 mean ± sd (min..max)':>34} | {'gain pts mean ± sd':>18} | "
            f"{'over control pts':>16} | " + " ".join(f"{'seed ' + str(s):>7}" for s in seeds))
    lines = [head, "-" * len(head)]
    for arm, entry in summary["arms"].items():
        final, gain, over = entry["final"], entry["gain_points"], entry.get("over_control_points")
        over_text = f"{over['mean']:+.1f} ± {over['sd']:.1f}" if over else "-"
        lines.append(f"{arm:>8} | {final['mean']:.3f} ± {final['sd']:.3f} ({final['min']:.3f}..{final['max']:.3f})"
                     f"{'':>4} | {gain['mean']:>+9.1f} ± {gain['sd']:>5.1f} | {over_text:>16} | "
                     + " ".join(f"{entry['per_seed'][str(s)]:>7.3f}" for s in seeds))
    lines.append(f"cold start (round 0) pass@1: {cold['mean']:.3f} ± {cold['sd']:.3f} ({cold['min']:.3f}..{cold['max']:.3f}); "
                 f"{len(seeds)} seeds, sd = sample standard deviation across seeds")
    return "\n".join(lines)


def seeds_plot(summary: dict[str, Any]) -> str:
    """A PNG (base64): mean held-out pass@1 per round for every arm, error bars = the sd across seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=100)
    for arm, entry in summary["arms"].items():
        xs = list(range(len(entry["rounds"])))
        ax.errorbar(xs, [r["mean"] for r in entry["rounds"]], yerr=[r["sd"] for r in entry["rounds"]], marker="o",
                    capsize=3, label=ARM_LABELS.get(arm, arm))
    ax.set_xlabel("round")
    ax.set_ylabel("held-out pass@1")
    ax.set_title(f"mean ± sd over seeds {', '.join(map(str, summary['seeds']))}", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return png_base64(fig)
