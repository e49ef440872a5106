"""The Train screen through Pilot, on the tiny local Llama: run, live chart, cancel, resume, current."""

from __future__ import annotations

import re

from textual.widgets import DataTable, Input

from engine.store import adapters, projects, review
from engine.store.review import Filter
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.modals import AskModal
from selfspec_tui.screens.train import TrainScreen, engine_args
from tests.helpers import fill, notes, wait_for


def test_form_values_become_engine_options() -> None:
    args = engine_args("p", {"epochs": "2", "lr": "", "name": "x"}, "chat", True, True)
    assert args == [
        "train",
        "--project",
        "p",
        "--prompt-format",
        "chat",
        "--name",
        "x",
        "--epochs",
        "2",
        "--include-pending",
        "--new",
    ]


def _project(db, tiny_folder) -> None:  # noqa: F811
    from engine.stages.models import register

    register(db, tiny_folder, "tiny")
    p = projects.create(db, "tp", "biomedicine", "tiny", {})
    ids = fill(db, p, 24, seed=3)
    review.set_status(db, p, Filter(ids=tuple(ids[:20])), "accepted", "x")


def _fill_form(screen, **values: str) -> None:
    for key, value in values.items():
        screen.query_one(f"#{key}", Input).value = value


async def test_train_cancel_resume_and_make_current(db, tiny_folder) -> None:  # noqa: F811
    _project(db, tiny_folder)
    app = SelfSpecApp(project="tp")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert "training set: 20 approved" in str(screen.query_one("#title").render())
        _fill_form(
            screen, name="slow", epochs="40", lr="5e-3", batch_size="2", micro_batch="1", checkpoint_every="1000"
        )
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(screen.points) >= 3, 120)
        shown = str(screen.query_one("#train-numbers").render())
        step, epoch, done = re.search(r"step (\d+)/400   epoch (\d+)/40 \(([\d.]+) done\)", shown).groups()  # type: ignore[union-attr]
        assert int(epoch) == int(float(done)) + 1 and abs(float(done) - int(step) / 10) < 0.2  # 10 steps an epoch
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: any("training cancelled" in n for n in notes(app)), 60)
        slow = adapters.by_name(db, projects.get(db, "tp"), "slow")
        assert slow.status == "interrupted"
        table = screen.query_one("#adapters", DataTable)
        assert [str(c) for c in table.get_row_at(0)][:2] == ["slow", "interrupted"]  # listed, as the CLI does
        done_before = len(adapters.steps(db, slow.id))
        assert done_before >= 3
        # resume with max steps lowered (run control may change): finishes from the checkpoint
        _fill_form(screen, max_steps=str(done_before + 4))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("adapter slow:" in n for n in notes(app)), 120)
        slow = adapters.by_name(db, projects.get(db, "tp"), "slow")
        assert slow.status == "done" and slow.metrics["steps"] == done_before + 4
        assert [p[0] for p in screen.points] == list(range(1, done_before + 5))
        assert "step" in str(screen.query_one("#train-numbers").render())
        # a second adapter, then make the first one current again
        _fill_form(screen, name="", epochs="1", batch_size="4", micro_batch="2", max_steps="0")
        await pilot.press("ctrl+n")  # no name in the form: it is asked for, with a free one suggested
        await wait_for(pilot, lambda: isinstance(app.screen, AskModal))
        assert app.screen.query_one("#answer", Input).value == "expert-1"
        app.screen.query_one("#answer", Input).value = "quick"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("adapter quick:" in n for n in notes(app)), 120)
        table = screen.query_one("#adapters", DataTable)
        assert table.row_count == 2
        assert adapters.current(db, projects.get(db, "tp")).name == "slow"
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("ctrl+u")
        assert adapters.current(db, projects.get(db, "tp")).name == "quick"
        await pilot.press("enter")  # selecting a row draws its stored curve
        assert len(screen.points) == len(adapters.steps(db, adapters.by_name(db, projects.get(db, "tp"), "quick").id))
        await pilot.press("escape")  # the project page says which expert is current and how it was trained
        await pilot.pause()
        state = str(app.screen.query_one("#state").render())
        assert state.startswith("expert: quick (done, 20 examples, loss ") and "export" not in state


async def test_errors_arrive_as_notices(db, tiny_folder) -> None:  # noqa: F811
    _project(db, tiny_folder)
    app = SelfSpecApp(project="tp")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("t")
        screen = app.screen
        _fill_form(screen, batch_size="6", micro_batch="4")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("not a multiple of micro-batch" in n for n in notes(app)), 60)
        assert isinstance(app.screen, TrainScreen)


async def test_train_on_two_processes_from_the_form(db, tiny_folder) -> None:  # noqa: F811
    """processes 2 in the form: torchrun runs the ranks, rank 0's steps draw the live chart."""
    _project(db, tiny_folder)
    app = SelfSpecApp(project="tp")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("t")
        screen = app.screen
        _fill_form(screen, name="two", epochs="1", batch_size="4", micro_batch="1", lr="5e-3", processes="2")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("adapter two:" in n for n in notes(app)), 300)
        two = adapters.by_name(db, projects.get(db, "tp"), "two")
        assert two.status == "done" and two.metrics["processes"] == 2
        assert [p[0] for p in screen.points] == list(range(1, two.metrics["steps"] + 1))
