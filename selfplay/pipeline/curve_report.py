"""What K bought, for a generate directory's report: the pass@k / maj@k (/ best-of-k) curve as a table and a plot.

What it is for: `selfplay report DIR` on any `selfplay generate` directory (and summary.json's `curve`): the curve
is computed from the run store (`RunReader.answer_classes`, `task_sample_costs`: SQL aggregates, so a 1M-sample
run is read without decoding a candidate) by `selfplay.pipeline.metrics.k_curve`, then shown as a Markdown table
(k, tasks, pass@k, maj@k, best@k where scores vary, $ of k samples per task, $ per point of pass@k) and a
matplotlib PNG on a log-k axis with the price of k samples on a second axis, as the papers on search at large K
draw it.
What it does not do: compute the estimators (`selfplay.pipeline.metrics`) or write files other than a PNG asked for.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from selfplay.core.store import RunReader
from selfplay.pipeline.metrics import k_curve


def generate_curve(run_dir: str | Path, round_: int = 0) -> dict[str, Any] | None:
    """The curve of a generate directory's verified candidates; None when no verifier was configured."""
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    verifier = json.loads(config.read_text()).get("generate", {}).get("verifier") if config.is_file() else None
    if not verifier:
        return None
    with RunReader(run_dir) as reader:
        curve = k_curve(reader.answer_classes(round_, verifier), reader.task_sample_costs(round_))
    return {"verifier": verifier, **curve}


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def curve_markdown(curve: dict[str, Any]) -> str:
    """The overall points as a Markdown table, with the note on how each figure is estimated."""
    best = curve.get("best_of_k")
    head = "| k | tasks | pass@k | maj@k |" + (" best-of-k |" if best else "") + " $ of k samples | $ per point |"
    lines = ["## What K buys", "", head, "|" + "---|" * (head.count("|") - 1)]
    for p in curve["points"]:
        cells = [f"{p['k']}", f"{p['tasks']}", f"{p['pass@k']:.4f}", f"{p['maj@k']:.4f}"]
        if best:
            cells.append(f"{p['best@k']:.4f}")
        cells += [_usd(p["usd"]), _usd(p["usd_per_point"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"- verifier: {curve.get('verifier')}; pass@k is the unbiased estimator (Chen et al. 2021) from "
              "each task's n samples and c passes; maj@k the expected majority vote of k samples drawn without "
              "replacement (ties share the credit; exact where short, else a seeded Monte-Carlo estimate); "
              "best-of-k the best-scored sample of k (shown where scores vary)",
              "- $ of k samples: per task, at the task's observed $ per sample; $ per point: that price over "
              "100 x pass@k (a percentage point of pass@k)", ""]
    return "\n".join(lines)


def curve_png(curve: dict[str, Any], title: str = "what K buys") -> bytes:
    """The overall curve on a log-k axis: pass@k, maj@k (best-of-k), and the $ of k samples on a second axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve["points"]
    ks = [p["k"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    ax.plot(ks, [p["pass@k"] for p in points], marker="o", label="pass@k")
    ax.plot(ks, [p["maj@k"] for p in points], marker="s", label="maj@k")
    if curve.get("best_of_k"):
        ax.plot(ks, [p["best@k"] for p in points], marker="^", label="best-of-k (verifier score)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (samples per task, log scale)")
    ax.set_ylabel("fraction of tasks")
    ax.grid(alpha=0.3)
    money = ax.twinx()
    money.plot(ks, [p["usd"] for p in points], color="grey", linestyle="--", label="$ of k samples")
    money.set_yscale("log")
    money.set_ylabel("$ of k samples per task")
    lines = ax.get_lines() + money.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
