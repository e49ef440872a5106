"""The Mixtures screen (x on the project list), driven by keys on the tiny random Llama: a mixture is
created from two projects' experts through the modals, its router trains in the background, the
routing shares per domain appear, and a question is answered with the expert that answered shown."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from engine.store import mixtures
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.mixtures import MixturesScreen
from tests.engine.test_mixture import two_experts  # noqa: F401 (a fixture)
from tests.helpers import wait_for


async def test_create_train_and_ask_a_mixture_by_keys(two_experts, home) -> None:  # noqa: F811
    db = two_experts
    app = SelfSpecApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("x")
        screen = app.screen
        assert isinstance(screen, MixturesScreen)
        assert "trained experts to mix: 2" in str(screen.query_one("#title", Static).render())
        await pilot.press("ctrl+n")
        app.screen.query_one(Input).value = "duo"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one(Input).value == "bio/e1 fin/e1"  # every finished expert, offered
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_one("#mixtures", DataTable).row_count == 1)
        assert mixtures.by_name(db, "duo").expert_names() == ["bio/e1", "fin/e1"]
        await wait_for(pilot, lambda: not screen.running)
        screen.form().fill({"max_steps": 2, "batch_size": 2, "micro_batch": 1})
        await pilot.press("ctrl+r")
        await pilot.press("ctrl+t")  # the Jobs screen lists the router's training; enter comes back here
        await wait_for(pilot, lambda: app.screen.query_one("#jobs", DataTable).row_count > 0)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen  # back to the same screen, still following the run
        await wait_for(pilot, lambda: mixtures.by_name(db, "duo").status == "done", timeout=120)
        await wait_for(pilot, lambda: not screen.running)
        row = [str(c) for c in screen.query_one("#mixtures", DataTable).get_row("duo")]
        assert row[1] == "done" and "bio: bio/e1" in row[5] and "fin: bio/e1" in row[5]
        await pilot.press("a")
        app.screen.query_one(Input).value = "what is insulin?"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "answered by" in str(screen.query_one("#mixture-answer", Static).render()), 120)
        assert "the question's tokens: bio/e1" in str(screen.query_one("#mixture-answer", Static).render())


async def test_a_mixture_is_deleted_by_keys_and_guards_its_projects(two_experts, home) -> None:  # noqa: F811
    from engine.stages.mixture import create
    from engine.store import projects
    from tests.engine.test_train import context
    from tests.helpers import notes

    db = two_experts
    create(context(db, None), "duo", ["bio/e1", "fin/e1"])
    app = SelfSpecApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("d", "y")  # the project list: bio's expert is in duo, so bio stays
        await wait_for(pilot, lambda: any("mixture(s) duo" in n for n in notes(app)), seen=lambda: notes(app))
        assert projects.get(db, "bio").name == "bio"
        await pilot.press("x")
        screen = app.screen
        assert isinstance(screen, MixturesScreen)
        await pilot.press("d", "n")  # asked first: no keeps it
        await pilot.pause()
        assert screen.query_one("#mixtures", DataTable).row_count == 1
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: screen.query_one("#mixtures", DataTable).row_count == 0)
        assert mixtures.list_all(db) == [] and any("deleted mixture duo" in n for n in notes(app))
