"""Jobs: runs of other processes listed with their progress and cancelled from the TUI; the `?`
overlay lists a screen's keys; the command palette holds the screen's actions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from textual.widgets import DataTable

from engine.events import eta_text, rate_text
from engine.store import projects, runs
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.help import HelpScreen, screen_keys
from selfspec_tui.screens.jobs import JobsScreen
from selfspec_tui.screens.project import ProjectScreen
from tests.helpers import ROOT, make_project, notes, wait_for


def test_rates_read_per_second_minute_or_hour() -> None:
    assert rate_text(2.5, "steps") == "2.5 steps/s"
    assert rate_text(0.05, "tasks kept") == "3.0 tasks kept/min"
    assert rate_text(0.0005, "examples") == "1.8 examples/h"
    assert rate_text(None, "steps") == "rate: measuring" and rate_text(0.0) == "rate: measuring"
    assert eta_text(None) == "measuring" and eta_text(75) == "1m15s" and eta_text(7300) == "2h01m"


async def test_a_cli_run_is_listed_with_its_progress_and_cancelled_from_the_jobs_screen(db) -> None:
    make_project("cli")
    env = {**os.environ, "SELFSPEC_FAKE_GEN_DELAY": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "--format", "json", "generate", "--project", "cli", "--target", "40"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = SelfSpecApp()
        async with app.run_test(size=(200, 50)) as pilot:
            await pilot.press("ctrl+t")
            screen = app.screen
            assert isinstance(screen, JobsScreen)
            table = screen.query_one("#jobs", DataTable)

            def row() -> list[str]:
                return [str(c) for c in table.get_row_at(0)] if table.row_count else []

            # the engine writes its progress to its run row every 2 s: another process can read it
            await wait_for(pilot, lambda: "/40 tasks kept" in " ".join(row()), 90)
            cells = row()
            assert cells[0] == f"pid {proc.pid}" and cells[1] == "cli" and cells[2].startswith("generate (")
            assert "in other processes" in str(screen.query_one("#jobs-note").render())
            [live] = [r for r in runs.list_runs(db) if r.status == runs.ACTIVE]
            assert live.counts["progress"]["total"] == 40 and live.counts["progress"]["unit"] == "tasks kept"
            await pilot.press("x")  # SIGTERM, as ctrl+x on a stage screen: the engine stops at a safe point
            assert proc.wait(60) == 130  # interrupted (EXIT_INTERRUPTED)
            await wait_for(pilot, lambda: any("asked process" in n for n in notes(app)))
            await wait_for(pilot, lambda: table.row_count == 0)
            assert "nothing is running" in str(screen.query_one("#jobs-note").render())
            [ended] = [r for r in runs.list_runs(db) if r.stage == "generate"]
            assert ended.status == "interrupted" and json.dumps(ended.counts)
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_question_mark_lists_the_keys_of_the_screen_underneath(db, project) -> None:
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        under = app.screen
        assert isinstance(under, ProjectScreen)
        keys = dict((what, k) for k, what in screen_keys(under))
        assert keys["Generate"] == "g" and keys["Review"] == "v" and keys["Jobs"] == "ctrl+t"
        assert "esc" in keys["Back"] and keys["Keys"] == "?, f1"
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        table = help_screen.query_one("#help-keys", DataTable)
        shown = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert shown["Train"] == "t" and shown["Chat"] == "h" and shown["Evaluate"] == "e"
        assert "dashboard" in help_screen.about  # the screen's own description comes first
        await pilot.press("escape")
        assert app.screen is under


async def test_the_command_palette_holds_the_screens_actions(db, project) -> None:
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Generate", "Review", "Train", "Evaluate", "Jobs", "Keys"} <= set(titles)
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Jobs")
        await command.callback()
        await pilot.pause()
        assert isinstance(app.screen, JobsScreen)
        assert projects.get(db, "test")  # nothing else changed


async def test_a_job_that_ends_while_its_screen_is_closed_is_announced(db, monkeypatch) -> None:
    monkeypatch.setenv("SELFSPEC_FAKE_GEN_DELAY", "0.2")  # long enough that it still runs when checked
    make_project("bg")
    app = SelfSpecApp(project="bg")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        app.screen.query_one("#target").value = "3"
        await pilot.press("ctrl+n")
        assert app.jobs.running(), notes(app)  # started at once; its engine child starts in the background
        app.screen.set_focus(None)
        await pilot.press("escape")  # leave it running
        assert isinstance(app.screen, ProjectScreen)
        ended = lambda: any(n == "generation of bg finished" for n in notes(app))  # noqa: E731
        await wait_for(pilot, ended, 120, seen=lambda: ([j.state for j in app.jobs.all()], notes(app)))
        assert not app.jobs.running() and app.sub_title == SelfSpecApp.SUB_TITLE  # the header is quiet again
        [job] = app.jobs.all()
        assert job.state == "finished" and job.progress is not None
