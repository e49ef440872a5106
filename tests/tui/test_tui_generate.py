"""The Generate screen through Pilot: form, run, live counters and reasons, cancel and resume."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import DataTable, Input, RichLog, Static, Switch

from engine.store import generation, projects
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.generate import GenerateScreen, engine_args, values_from_config
from selfspec_tui.screens.jobs import JobsScreen
from selfspec_tui.screens.project import ProjectScreen
from tests.helpers import make_project, notes, wait_for


def _fake_project() -> None:
    make_project("g")


def test_form_values_become_engine_options() -> None:
    args = engine_args("p", {"target": "10", "seed": "", "temperature": "0.7"}, retrieval=False, new=True)
    assert args == ["generate", "--project", "p", "--target", "10", "--temperature", "0.7", "--no-retrieval", "--new"]
    config = {"generate": {"seed": 5, "brainstorm": {"temperature": 0.9, "top_p": 0.9, "max_tokens": 100}}}
    values = values_from_config(config, 42)
    assert values["target"] == "42" and values["seed"] == "5" and values["temperature"] == "0.9"


async def test_generate_run_cancel_resume(db, monkeypatch) -> None:
    _fake_project()
    app = SelfSpecApp(project="g")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("g")
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        assert "no generation yet" in str(screen.query_one("#latest", Static).render())
        assert "no generation rate measured" in str(screen.query_one("#cost", Static).render())
        screen.query_one("#target", Input).value = "8"
        screen.query_one("#seed", Input).value = "3"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("8 examples" in n for n in notes(app)))
        assert screen.query_one("#reasons", DataTable).row_count >= 1
        lines = [str(line.text) for line in screen.query_one("#items", RichLog).lines]
        assert any(line.startswith("+ task") for line in lines) and any("= answer" in line for line in lines)
        assert "kept 8" in str(screen.query_one("#counters", Static).render())
        assert "generation 1: done" in str(screen.query_one("#latest", Static).render())
        # the finished run measured a rate: the form now says what a target costs
        screen.query_one("#target", Input).value = "5000"
        await pilot.pause()
        cost = str(screen.query_one("#cost", Static).render())
        assert cost.startswith("target 5000: about ") and "examples/" in cost and "; 200 take " in cost
        screen.query_one("#target", Input).value = ""  # a blank target never leaves the last figure standing
        await pilot.pause()
        assert "blank or not a whole number" in str(screen.query_one("#cost", Static).render())

        # a slow new generation, cancelled mid-way, then resumed from the same screen
        monkeypatch.setenv("SELFSPEC_FAKE_GEN_DELAY", "0.1")
        screen.query_one("#target", Input).value = "30"
        screen.query_one("#retrieval", Switch).value = False
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: "prompts" in str(screen.query_one("#counters", Static).render()))
        screen.query_one("#target", Input).focus()
        await pilot.press("escape", "escape")  # the first leaves the field; the second leaves the screen
        assert isinstance(app.screen, ProjectScreen) and len(app.jobs.running()) == 1  # the run goes on
        assert any("goes on in the background" in n for n in notes(app))
        await wait_for(pilot, lambda: "jobs: generation · g" in app.sub_title)
        await pilot.press("ctrl+t")  # the Jobs screen lists it with its progress
        assert isinstance(app.screen, JobsScreen)
        jobs_table = app.screen.query_one("#jobs", DataTable)
        await wait_for(pilot, lambda: "running" in [str(c) for c in jobs_table.get_row_at(0)])
        await pilot.press("enter")  # enter on the job opens its screen, which attaches to the run
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, GenerateScreen) and screen.running
        await wait_for(pilot, lambda: "prompts" in str(screen.query_one("#counters", Static).render()))
        screen.query_one("#seed", Input).focus()
        await pilot.press("ctrl+x")  # works from inside a form field too
        await wait_for(pilot, lambda: any("ctrl+r resumes" in n for n in notes(app)))
        assert not any("generation of g cancelled" in n for n in notes(app))  # said once, by the screen
        latest = str(screen.query_one("#latest", Static).render())
        # cancelled before the end (brainstorm, or respond on a loaded machine), and resumable
        assert "generation 2: " in latest and "ctrl+r resumes it" in latest and "generation 2: done" not in latest
        monkeypatch.delenv("SELFSPEC_FAKE_GEN_DELAY")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("30 examples" in n for n in notes(app)))
        gens = generation.list_for(db, projects.get(db, "g"))
        assert [g.phase for g in gens] == ["done", "done"] and gens[1].config["generate"]["retrieval"] is False
        await pilot.press("escape", "escape")  # leave the field, then the screen
        assert "examples: 38" in str(app.screen.query_one("#counts", Static).render())


async def test_bad_option_is_a_notification(db) -> None:
    _fake_project()
    app = SelfSpecApp(project="g")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("g")
        app.screen.query_one("#top_p", Input).value = "7"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("--top-p" in n for n in notes(app)))


def test_reopening_prefills_an_unfinished_generation(tmp_path: Path) -> None:
    config = {"generate": {"seed": 11, "retrieval": False, "passages": 3}}
    values = values_from_config(config, 7)
    assert values == {"target": "7", "seed": "11", "passages": "3"}


async def test_a_second_generation_is_refused_in_the_tui_with_who_holds_it(db) -> None:
    import subprocess
    import sys

    from engine.store import locks

    _fake_project()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        p = projects.get(db, "g")
        db.execute(
            "INSERT INTO locks (project_id, unit, pid, proc_start, command, started_at) VALUES (?, ?, ?, ?, ?, ?)",
            [p.id, "generation", holder.pid, locks.proc_start(holder.pid), "generate", "2026-12-02T10:00:00"],
        )
        app = SelfSpecApp(project="g")
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("g")
            screen = app.screen
            assert isinstance(screen, GenerateScreen)
            screen.query_one("#target", Input).value = "4"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: any("already running" in n for n in notes(app)))
            assert any(f"pid {holder.pid}" in n for n in notes(app))
            assert generation.latest(db, p) is None  # nothing was started
    finally:
        holder.kill()
        holder.wait()


async def test_generate_on_local_ray_workers_shows_each_worker(db) -> None:
    import pytest

    pytest.importorskip("ray")
    _fake_project()
    app = SelfSpecApp(project="g")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("g")
        screen = app.screen
        screen.query_one("#target", Input).value = "6"
        screen.query_one("#ray", Input).value = "local:2"
        seen: list[str] = []

        def stats() -> str:
            text = str(screen.query_one("#stats").render())
            seen.append(text)
            return text

        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: bool(stats()) and any("6 examples" in n for n in notes(app)), 300)
        assert any(re.search(r"2 workers: (\d+|-) · (\d+|-) tok/s", text) for text in seen)
        gen = generation.list_for(db, projects.get(db, "g"))[0]
        assert gen.phase == "done" and gen.config["generate"]["ray"] == "local:2"
