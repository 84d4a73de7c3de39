"""`selfplay report DIR`: a Markdown file and a self-contained HTML page with plots, from the run store.

What it is for: the per-round story of a run: held-out pass@1 / pass@k, yield, tokens and $ per
round, $ per verified token, and the projected cost of 1B verified tokens at the observed yield.
Each round says whether it was kept: a round the guards rejected is marked with the guard's reason and a hint
(in the table and as a red cross on the accuracy plot), a round that trained on nothing with why (a grey
marker). The training loss of every round (rounds/R/train/metrics.jsonl, written by the trainer) is one curve.
Plots are matplotlib PNGs embedded as base64, so the HTML page is one file that opens anywhere.
What it does not do: compute metrics (jobs store them in round records) or need a network.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from selfplay.core.files import read_jsonl_log

PROJECTED_VERIFIED_TOKENS = 1e9


def usd_per_verified_token(cost_usd: float, verified_tokens: int) -> float | None:
    return cost_usd / verified_tokens if verified_tokens else None


def projections(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    cost = sum(r.get("cost_usd", 0.0) for r in rounds)
    verified = sum(r.get("verified_tokens", 0) for r in rounds)
    generated = sum(r.get("completion_tokens", 0) for r in rounds)
    per_token = usd_per_verified_token(cost, verified)
    yield_tokens = verified / generated if generated else None
    return {
        "cost_usd": cost, "verified_tokens": verified, "generated_tokens": generated,
        "usd_per_verified_token": per_token, "token_yield": yield_tokens,
        "projected_usd_1b_verified": per_token * PROJECTED_VERIFIED_TOKENS if per_token is not None else None,
    }


COLUMNS = [("round", "round", "{}"), ("eval_pass@1", "held-out pass@1", "{:.3f}"),
           ("eval_pass@k", "held-out pass@k", "{:.3f}"), ("eval_maj@k", "held-out maj@k", "{:.3f}"),
           ("yield", "yield", "{:.3f}"), ("samples", "samples", "{}"), ("completion_tokens", "tokens", "{:,}"),
           ("cost_usd", "$", "usd"), ("seconds", "seconds", "{:.1f}"), ("status", "kept", "{}")]
# Shown when some round has them: the PRM's best-of-N on the eval samples (verifier = "prm", selfplay.jobs.prm_refresh).
OPTIONAL_COLUMNS = [("prm.best_of_n", "PRM best-of-N", "{:.3f}"),
                    # share of the round's tasks whose candidates teach the algorithm anything (Algorithm.signal)
                    ("selection.signal.share", "signal share", "{:.2f}")]


def round_status(record: dict[str, Any]) -> str:
    """Whether the round's policy was kept: "yes", "rejected: <reasons> (hint: ...)" or "trained nothing: <why>"."""
    if record.get("rejected"):
        text = "rejected: " + "; ".join(record.get("reasons") or [])
        return text + (f" (hint: {record['hint']})" if record.get("hint") else "")
    train = record.get("train") or {}
    idle = train.get("skipped") == "no training rows" or ("skipped" not in train and train.get("steps") == 0)
    if record.get("round", 0) > 0 and idle:  # GRPO: every iteration's groups without signal trains 0 steps
        passed, samples = record.get("passed"), record.get("samples")
        why = f", {passed} of {samples} samples passed" if passed is not None and samples else ""
        return f"trained nothing: no training rows (no signal){why}"
    return "yes"


def _value(record: dict[str, Any], key: str) -> Any:
    """`record[key]`, a dotted key reading nested records ("prm.best_of_n")."""
    if key == "status":  # the table's short form; the section below the table has the reasons and hints
        return round_status(record).split(":")[0]
    for part in key.split("."):
        record = record.get(part) if isinstance(record, dict) else None
    return record


def usd(value: float | None) -> str:
    """Dollars with enough digits to see small amounts: $1,234.56, $0.0123, $0.000456."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}" if abs(value) >= 1e-4 else f"{value:.3e}"


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "usd":
        return usd(value)
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown(rounds: list[dict[str, Any]], title: str) -> str:
    columns = COLUMNS + [c for c in OPTIONAL_COLUMNS if any(_value(r, c[0]) is not None for r in rounds)]
    lines = [f"# {title}", "", "| " + " | ".join(c[1] for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for r in rounds:
        lines.append("| " + " | ".join(_cell(_value(r, key), fmt) for key, _, fmt in columns) + " |")
    p = projections(rounds)
    lines += ["", "## Money", "",
              f"- total cost: ${usd(p['cost_usd'])} for {p['verified_tokens']:,} verified of "
              f"{p['generated_tokens']:,} generated tokens",
              f"- $ per verified token: {_cell(p['usd_per_verified_token'], '{:.3e}')}",
              f"- projected cost of 1B verified tokens at the observed yield: "
              f"${_cell(p['projected_usd_1b_verified'], '{:,.2f}')}", ""]
    lines += _status_lines(rounds) + _signal_lines(rounds)
    from selfplay.pipeline.monitors import report_lines  # the monitors / guards section (selfplay.pipeline.monitors owns it)
    return "\n".join(lines + report_lines(rounds))


def _status_lines(rounds: list[dict[str, Any]]) -> list[str]:
    """A "Rounds not kept" section: each rejected or idle round with its reason and what to change."""
    odd = [(r["round"], round_status(r)) for r in rounds if round_status(r) != "yes"]
    if not odd:
        return []
    return ["## Rounds not kept or not trained", ""] + [f"- round {n}: {text}" for n, text in odd] + [""]


def _signal_lines(rounds: list[dict[str, Any]]) -> list[str]:
    """A "No learning signal" section: each round where almost no group (GRPO: mixed rewards; DPO: a pair; SFT: a
    pass) could teach the algorithm anything (`selection.signal.no_signal`, see selfplay.pipeline.select.signal)."""
    flagged = [(r["round"], sig) for r in rounds if (sig := _value(r, "selection.signal")) and sig.get("no_signal")]
    if not flagged:
        return []
    return ["## No learning signal", ""] + [
        f"- round {n}: no signal: {sig['mixed']} of {sig['groups']} tasks' groups carry a learning signal "
        f"(share {sig['share']:.2f}); all-equal rewards teach nothing: raise K or the temperature, or pick easier "
        "tasks" for n, sig in flagged] + [""]


def _mark_rounds(ax, rounds: list[dict[str, Any]]) -> None:
    """On the accuracy plot: a red cross at a rejected round's own pass@1, a grey ring on a round that trained
    nothing."""
    rejected = [(r["round"], (r.get("rejected_eval") or {}).get("eval_pass@1")) for r in rounds if r.get("rejected")]
    rejected = [(x, y) for x, y in rejected if y is not None]
    if rejected:
        ax.scatter(*zip(*rejected), marker="x", color="red", s=60, zorder=5, label="rejected (own pass@1)")
    idle = [(r["round"], r.get("eval_pass@1") or 0.0) for r in rounds if round_status(r).startswith("trained nothing")]
    if idle:
        ax.scatter(*zip(*idle), marker="o", facecolors="none", edgecolors="grey", s=140, zorder=5,
                   label="trained nothing")


def plot(rounds: list[dict[str, Any]], series: list[tuple[str, str]], ylabel: str, title: str = "",
         unit_range: bool = False, marks: bool = False) -> str:
    """A PNG (base64) of `series` per round: integer round ticks, a title, rates on 0..1, amounts from 0; with
    `marks`, rejected and idle rounds marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    xs = [r["round"] for r in rounds]
    plotted = False
    for key, label in series:
        ys = [r.get(key) for r in rounds]
        if any(y is not None for y in ys):
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=label)
            plotted = True
    if marks:
        _mark_rounds(ax, rounds)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title or ylabel, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if unit_range:
        ax.set_ylim(0, 1.02)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize=8)
    return png_base64(fig)


# (series, y label, title, y on 0..1)
PLOTS = [([("eval_pass@1", "pass@1"), ("eval_pass@k", "pass@k"), ("eval_maj@k", "maj@k")], "fraction of tasks",
          "held-out accuracy", True),
         ([("yield", "yield")], "verified / generated", "yield of verified samples", True),
         ([("completion_tokens", "tokens")], "completion tokens", "tokens per round", False),
         ([("cost_usd", "$")], "USD", "cost per round", False),
         ([("usd_per_verified_token", "$ / verified token")], "USD per verified token", "cost per verified token",
          False)]


def loss_curves(run_dir: str | Path) -> dict[int, list[tuple[int, float]]]:
    """Round -> [(step, loss)] from the trainer's rounds/R/train/**/metrics.jsonl (GRPO iterations one after the
    other, steps counted across them)."""
    curves: dict[int, list[tuple[int, float]]] = {}
    for round_dir in sorted(Path(run_dir).glob("rounds/*/train"), key=lambda p: p.parent.name):
        if not round_dir.parent.name.isdigit():
            continue
        points: list[tuple[int, float]] = []
        files = [round_dir / "metrics.jsonl"] + sorted(round_dir.glob("iter-*/metrics.jsonl"),
                                                       key=lambda p: int(p.parent.name.split("-")[1]))
        for file in files:
            offset = points[-1][0] if points else 0
            for record in read_jsonl_log(file):
                if isinstance(record.get("loss"), (int, float)) and isinstance(record.get("step"), int):
                    points.append((offset + record["step"], float(record["loss"])))
        if points:
            curves[int(round_dir.parent.name)] = points
    return curves


def png_base64(fig) -> str:
    """A matplotlib figure as base64 PNG text (for <img src="data:...">), the figure closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def loss_plot(curves: dict[int, list[tuple[int, float]]]) -> str:
    """A PNG (base64): one training-loss curve per round against its optimizer step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for round_, points in sorted(curves.items()):
        ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=f"round {round_}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_base64(fig)


def html_page(rounds: list[dict[str, Any]], title: str, run_dir: str | Path | None = None) -> str:
    images = "".join(f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
                     f'{plot(rounds, series, ylabel, name, unit, marks=unit and series[0][0] == "eval_pass@1")}">'
                     for series, ylabel, name, unit in PLOTS) if rounds else "<p>no rounds yet</p>"
    curves = loss_curves(run_dir) if run_dir is not None and rounds else {}
    if curves:
        images += f'<img alt="training loss" src="data:image/png;base64,{loss_plot(curves)}">'
    body = html.escape(markdown(rounds, title))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{margin:4px}</style>"
            f"</head><body><h1>{html.escape(title)}</h1>{images}<pre>{body}</pre></body></html>")


def write_report(rounds: list[dict[str, Any]], out_dir: str | Path, title: str = "selfplay run") -> dict[str, str]:
    out = Path(out_dir)
    for r in rounds:
        r.setdefault("usd_per_verified_token", usd_per_verified_token(r.get("cost_usd", 0.0), r.get("verified_tokens", 0)))
    md, page = out / "report.md", out / "report.html"
    md.write_text(markdown(rounds, title))
    page.write_text(html_page(rounds, title, out))
    return {"markdown": str(md), "html": str(page)}


def generate_totals(counts: dict[str, Any]) -> dict[str, Any]:
    """A `selfplay generate` directory's figures (`RunView.generate_totals`'s counts) with yield and $ per verified."""
    cost, verified, judged = counts["cost_usd"], counts["verified"], counts["judged"]
    return {**counts, "yield": verified / judged if judged else None,
            "usd_per_verified": cost / verified if verified else None}


def generate_markdown(totals: dict[str, Any], title: str) -> str:
    t = totals
    yield_ = f"{t['yield']:.3f}" if t["yield"] is not None else "- (no verifier ran)"
    return "\n".join([
        f"# {title}", "", "| candidates | tasks | verified | yield | completion tokens | verified tokens | $ | "
        "$ per verified |", "|---|---|---|---|---|---|---|---|",
        f"| {t['candidates']:,} | {t['tasks']:,} | {t['verified']:,} | {yield_} | {t['completion_tokens']:,} | "
        f"{t['verified_tokens']:,} | {usd(t['cost_usd'])} | {usd(t['usd_per_verified'])} |", "",
        f"- total cost: ${usd(t['cost_usd'])} for {t['verified']:,} verified of {t['candidates']:,} candidates "
        f"({t['judged']:,} checked by a verifier)", ""])


def write_generate_report(counts: dict[str, Any], out_dir: str | Path, title: str) -> dict[str, Any]:
    """report.md / report.html of a generate directory from its store's counts (`RunView.generate_totals`)."""
    from selfplay.pipeline.curve_report import curve_markdown, curve_png, generate_curve

    totals = generate_totals(counts)
    out = Path(out_dir)
    md = generate_markdown(totals, title)
    curve = generate_curve(out)  # what K bought: pass@k / maj@k for k = 1, 2, 4, ..., K with its price
    image = ""
    if curve and curve["points"]:
        md += "\n" + curve_markdown(curve)
        image = f'<img alt="what K buys" src="data:image/png;base64,{base64.b64encode(curve_png(curve)).decode()}">'
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                                     f"</title></head><body>{image}<pre>{html.escape(md)}</pre></body></html>")
    return {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "totals": totals, "curve": curve}
