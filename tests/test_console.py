"""tinyact.console: the one progress helper every long job uses (ETA, running acc / solved)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import TextColumn

from tinyact.console import progress_bar, tally


def test_progress_bar_shows_counts_elapsed_and_eta() -> None:
    out = Console(record=True, width=120, force_terminal=False)
    with progress_bar(TextColumn("acc 0.5"), console=out) as bar:
        row = bar.add_task("hotpotqa", total=4)
        bar.advance(row, 3)
    text = out.export_text()
    assert "hotpotqa" in text and "3/4" in text and "acc 0.5" in text and "ETA" in text


def test_tally_callback_counts_from_where_a_resumed_job_stands() -> None:
    calls = []
    with tally("collect", 5, done=2, score="solved", enabled=lambda *a: calls.append(a)) as advance:
        advance(True)
        advance(False)
        advance(True)
    assert calls == [(3, 5, 1), (4, 5, 1), (5, 5, 2)]  # (done, total, solved)


def test_tally_disabled_is_silent(capsys) -> None:
    with tally("x", 2, enabled=False) as advance:
        advance(True)
    assert capsys.readouterr() == ("", "")
