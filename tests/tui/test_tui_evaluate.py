"""The Evaluate screen through Pilot: form to command line, a real run, cancel and resume, table and chart."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Switch

from engine.store import evals, projects
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.evaluate import EvaluateScreen, engine_args
from tests.helpers import notes, talk_project, wait_for


def test_form_values_become_engine_options() -> None:
    values = {"data": "a.jsonl, b.jsonl", "models": "base,x:q8_0", "shots": "2", "limit": ""}
    assert engine_args("p", values, False, True, True) == [
        "eval", "run", "--project", "p",
        "--data", "a.jsonl", "--data", "b.jsonl",
        "--model", "base", "--model", "x:q8_0",
        "--shots", "2",
        "--no-seeds", "--new",
    ]  # fmt: skip


async def test_run_cancel_resume_and_read_the_results(db) -> None:
    talk_project(db)
    app = SelfSpecApp(project="talk")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        assert "held-out seeds: 0" in str(screen.query_one("#title").render())
        screen.query_one("#limit", Input).value = "40"
        screen.query_one("#use-seeds", Switch).value = False
        await pilot.press("ctrl+r")
        p = projects.get(db, "talk")
        await wait_for(
            pilot, lambda: bool(evals.list_for(db, p)) and len(evals.scores(db, evals.list_for(db, p)[0].id)) >= 3, 120
        )
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: not screen.running, 60)
        [ev] = evals.list_for(db, p)
        assert evals.get(db, ev.id).status == "interrupted"
        assert any("cancelled" in n for n in notes(app))
        assert "interrupted" in str(screen.query_one("#eval-summary").render())
        screen.query_one("#limit", Input).value = "6"  # other settings: a new evaluation, not the cancelled one
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not screen.running and len(evals.list_for(db, p)) == 2, 300)
        done = evals.list_for(db, p)[-1]
        stored = evals.scores(db, done.id)
        assert done.status == "done" and sum("content-free" not in s.dataset for s in stored) == 2 * 6
        assert sum("content-free" in s.dataset for s in stored) == 2 * 3  # contextual calibration's inputs
        table = screen.query_one("#eval-table", DataTable)
        # general (off-domain): accuracy and macro-F1 raw, cross-fit and contextual, then 3 predicted-label rows
        assert table.row_count == 9
        assert "domain" in str(screen.query_one("#eval-summary").render())
        key = str(screen.query_one("#chart-key").render())  # numbered sets; a fill per series, not only colour
        assert "sets: 1 general (off-domain)" in key and "██ base" in key and "▒▒ twin:q8_0" in key
        assert "·· no-reading baseline" in key
        rows = screen.query_one("#evals", DataTable)
        assert rows.row_count == 2
        # the cancelled one again, from the list: it says how to finish it
        rows.focus()
        rows.move_cursor(row=0)
        await pilot.press("enter")
        assert "ctrl+r with the same settings" in str(screen.query_one("#eval-summary").render())
