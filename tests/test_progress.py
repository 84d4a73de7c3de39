"""The generate job's live display: verified candidates and $ per verified candidate, one line on narrow terminals."""

import io

from rich.console import Console

from selfplay.progress import JobProgress


def _render(width: int, verified):
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    progress = JobProgress("generate", 400, usd_cap=400.0, console=console)
    progress.update(done=120, candidates=480, tokens=1_234_567, usd=12.5, requests=130, verified=verified, force=True)
    console.print(progress._progress.get_renderable())
    return progress, out.getvalue().rstrip("\n")


def test_verified_and_dollars_per_verified_candidate_are_shown():
    progress, line = _render(160, 250)
    assert not progress.narrow
    assert "ver 250" in line and "$0.05/ver" in line and "tok 1,234,567" in line and "$12.5000/400.00" in line
    assert "$-/ver" in _render(160, 0)[1] and "ver" not in _render(160, None)[1]


def test_a_narrow_terminal_gets_one_short_line():
    progress, line = _render(60, 250)
    assert progress.narrow and "\n" not in line and len(line) <= 60
    assert "ver 250" in line and "$0.05/ver" in line and "tok" not in line
