"""`selfplay report DIR`: a Markdown file and a self-contained HTML page with plots, from the run store.

What it is for: the per-round story of a run: held-out pass@1 / pass@k, yield, tokens and $ per
round, $ per verified token, and the projected cost of 1B verified tokens at the observed yield
(beside the reference point: 1T tokens at GPT-4-turbo's $30 per 1M output tokens is $30M).
Plots are matplotlib PNGs embedded as base64, so the HTML page is one file that opens anywhere.
What it does not do: compute metrics (jobs store them in round records) or need a network.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

GPT4_TURBO_OUTPUT_USD_PER_M = 30.0
PROJECTED_VERIFIED_TOKENS = 1e9


def usd_per_verified_token(cost_usd: float, verified_tokens: int) -> float | None:
    return cost_usd / verified_tokens if verified_tokens else None


def projections(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    cost = sum(r.get("cost_usd", 0.0) for r in rounds)
    verified = sum(r.get("verified_tokens", 0) for r in rounds)
    generated = sum(r.get("completion_tokens", 0) for r in rounds)
    per_token = usd_per_verified_token(cost, verified)
    yield_tokens = verified / generated if generated else None
    api_per_verified = (GPT4_TURBO_OUTPUT_USD_PER_M / 1e6 / yield_tokens) if yield_tokens else None
    return {
        "cost_usd": cost, "verified_tokens": verified, "generated_tokens": generated,
        "usd_per_verified_token": per_token, "token_yield": yield_tokens,
        "projected_usd_1b_verified": per_token * PROJECTED_VERIFIED_TOKENS if per_token is not None else None,
        "gpt4_turbo_usd_1b_verified_at_this_yield": (api_per_verified * PROJECTED_VERIFIED_TOKENS
                                                      if api_per_verified else None),
        "reference_gpt4_turbo_1t_tokens_usd": GPT4_TURBO_OUTPUT_USD_PER_M * 1e6,
    }


COLUMNS = [("round", "round", "{}"), ("eval_pass@1", "held-out pass@1", "{:.3f}"),
           ("eval_pass@k", "held-out pass@k", "{:.3f}"), ("yield", "yield", "{:.3f}"),
           ("samples", "samples", "{}"), ("completion_tokens", "tokens", "{:,}"),
           ("cost_usd", "$", "{:.4f}"), ("seconds", "seconds", "{:.1f}")]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown(rounds: list[dict[str, Any]], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in rounds:
        lines.append("| " + " | ".join(_cell(r.get(key), fmt) for key, _, fmt in COLUMNS) + " |")
    p = projections(rounds)
    lines += ["", "## Money", "",
              f"- total cost: ${p['cost_usd']:.4f} for {p['verified_tokens']:,} verified of "
              f"{p['generated_tokens']:,} generated tokens",
              f"- $ per verified token: {_cell(p['usd_per_verified_token'], '{:.3e}')}",
              f"- projected cost of 1B verified tokens at the observed yield: "
              f"${_cell(p['projected_usd_1b_verified'], '{:,.2f}')}",
              f"- the same 1B verified tokens from GPT-4-turbo ($30 per 1M output tokens) at this yield: "
              f"${_cell(p['gpt4_turbo_usd_1b_verified_at_this_yield'], '{:,.0f}')}",
              "- for scale: generating 1T tokens with GPT-4-turbo at $30 per 1M output tokens costs $30M", ""]
    return "\n".join(lines)


def plot(rounds: list[dict[str, Any]], series: list[tuple[str, str]], ylabel: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    xs = [r["round"] for r in rounds]
    plotted = False
    for key, label in series:
        ys = [r.get(key) for r in rounds]
        if any(y is not None for y in ys):
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=label)
            plotted = True
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


PLOTS = [([("eval_pass@1", "pass@1"), ("eval_pass@k", "pass@k")], "held-out accuracy"),
         ([("yield", "yield")], "verified / generated"),
         ([("completion_tokens", "tokens")], "tokens per round"),
         ([("cost_usd", "$")], "USD per round"),
         ([("usd_per_verified_token", "$ / verified token")], "USD per verified token")]


def html_page(rounds: list[dict[str, Any]], title: str) -> str:
    images = "".join(f'<img alt="{html.escape(ylabel)}" src="data:image/png;base64,{plot(rounds, series, ylabel)}">'
                     for series, ylabel in PLOTS) if rounds else "<p>no rounds yet</p>"
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
    page.write_text(html_page(rounds, title))
    return {"markdown": str(md), "html": str(page)}
