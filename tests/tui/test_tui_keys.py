"""Keys typed into a text box go to the box: one-key actions fire only with a table focused,
on every screen that has them; and wrapped text is shown whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input

from engine.store import review
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.corpus import CorpusScreen
from selfspec_tui.screens.jobs import JobsScreen
from selfspec_tui.screens.keys import TableKeys, letter_actions
from selfspec_tui.screens.mixtures import MixturesScreen
from selfspec_tui.screens.project import ProjectScreen
from selfspec_tui.screens.projects import ProjectsScreen
from selfspec_tui.screens.review import ReviewScreen
from selfspec_tui.screens.seeds import SeedsScreen
from selfspec_tui.widgets.text_pane import TextPane
from tests.helpers import fill, import_folder_in_tui, wait_for

SCREENS_WITH_LETTER_KEYS = [
    ProjectsScreen,
    ProjectScreen,
    SeedsScreen,
    CorpusScreen,
    ReviewScreen,
    JobsScreen,
    MixturesScreen,
]


def test_every_screen_with_letter_keys_guards_them() -> None:
    import importlib
    import inspect

    from textual.screen import ModalScreen

    import selfspec_tui.screens as pkg

    guarded = []
    for module in sorted(Path(pkg.__file__).parent.glob("*.py")):
        mod = importlib.import_module(f"selfspec_tui.screens.{module.stem}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if not issubclass(cls, Screen) or issubclass(cls, ModalScreen) or cls.__module__ != mod.__name__:
                continue
            if letter_actions(list(cls.BINDINGS)):
                assert issubclass(cls, TableKeys), f"{cls.__name__} has one-key actions but no TableKeys"
                guarded.append(cls)
    assert set(guarded) == set(SCREENS_WITH_LETTER_KEYS)
    assert letter_actions([Binding("a", "x"), Binding("escape,b", "y"), Binding("ctrl+r", "z")]) == {"x"}


async def test_review_typing_after_a_search_changes_nothing(db, project) -> None:
    ids = fill(db, project, 30, seed=2)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        await pilot.press("slash", *"Task", "enter")
        await pilot.pause(0.3)
        box = screen.query_one("#f-search", Input)
        await pilot.press(*"raAReufn")  # every one-key decision letter, typed after the search
        await pilot.pause(0.3)
        assert screen.focused is box and box.value == "Taskra" + "AReufn"
        assert {review.get(db, i).status for i in ids} == {"pending"}
        assert isinstance(app.screen, ReviewScreen)  # no confirmation or edit dialog opened
        for other in ("#f-type", "#f-reason"):
            screen.query_one(other, Input).focus()
            await pilot.press(*"ar")
            assert {review.get(db, i).status for i in ids} == {"pending"}
        await pilot.press("escape")  # to the table: now the keys act
        await pilot.pause()
        for name in ("#f-search", "#f-type", "#f-reason"):
            screen.query_one(name, Input).value = ""
        await wait_for(pilot, lambda: len(screen.query_one("#examples").keys) == 30)
        await pilot.press("a")
        assert sum(review.get(db, i).status == "accepted" for i in ids) == 1


async def test_corpus_typing_after_a_search_opens_nothing(db, project, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Asthma causes reversible airway obstruction and wheeze.")
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(140, 45)) as pilot:
        await import_folder_in_tui(pilot, app, folder)
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        await wait_for(pilot, lambda: screen.query_one("#documents", DataTable).row_count == 1)
        await pilot.press("slash", *"wheeze", "enter")
        hits = screen.query_one("#hits", DataTable)
        await wait_for(pilot, lambda: hits.row_count > 0)
        await pilot.press(*" import x")
        await pilot.pause(0.3)
        assert app.screen is screen  # the import dialog did not open
        assert screen.query_one("#query", Input).value == "wheeze import x"
        assert screen._run is None


@pytest.mark.parametrize("screen_key", ["s"])
async def test_seeds_filter_box_keeps_letters(db, project, screen_key: str) -> None:
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press(screen_key)
        screen = app.screen
        assert isinstance(screen, SeedsScreen)
        await pilot.press("slash", *"aedi", "enter", *"aedi")
        await pilot.pause(0.2)
        assert app.screen is screen  # no add/edit/delete/import dialog
        assert isinstance(screen.focused, Input) and screen.focused.value == "aediaedi"


class _Probe(TableKeys, Screen[None]):
    BINDINGS = [Binding("x", "hit", "Hit"), Binding("f5", "ctrl_hit", "F5")]
    hits: list[str]

    def compose(self) -> ComposeResult:
        yield Input(id="box")
        yield DataTable(id="table")

    def action_hit(self) -> None:
        self.hits.append("x")

    def action_ctrl_hit(self) -> None:
        self.hits.append("ctrl")


async def test_letter_actions_need_a_focused_table_but_other_keys_do_not() -> None:
    class Host(App[None]):
        def on_mount(self) -> None:
            probe = _Probe()
            probe.hits = []
            self.push_screen(probe)

    app = Host()
    async with app.run_test() as pilot:
        probe = app.screen
        probe.query_one("#box", Input).focus()
        await pilot.press("x", "f5")
        assert probe.hits == ["ctrl"] and probe.query_one("#box", Input).value == "x"
        probe.query_one("#table", DataTable).focus()
        await pilot.press("x")
        assert probe.hits == ["ctrl", "x"]


async def test_wrapped_text_loses_no_character() -> None:
    words = "The drug has been used for treatment of hypertension since the early nineteen eighties " * 6

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield TextPane(id="pane")

    app = Host()
    async with app.run_test(size=(37, 20)) as pilot:
        pane = app.query_one(TextPane)
        pane.update(words)
        await pilot.pause()
        visible = pane.size.width - pane.styles.scrollbar_size_vertical
        lines = [strip.text.rstrip() for strip in pane._lines]
        assert all(len(line) <= visible for line in lines)
        assert " ".join(lines).split() == words.split()
        shown = [pane.render_line(y).text[:visible].rstrip() for y in range(min(len(lines), pane.size.height))]
        assert shown == lines[: len(shown)]
