"""The TUI driven by keys through Pilot: projects, seeds and corpus screens."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable, Input, Static, TextArea

from engine import paths
from engine.store import projects, seeds
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.corpus import CorpusScreen
from selfspec_tui.screens.project import ProjectScreen
from selfspec_tui.screens.seeds import SeedsScreen
from tests.helpers import import_folder_in_tui, notes, wait_for


async def test_create_open_and_delete_a_project(db) -> None:
    app = SelfSpecApp()
    async with app.run_test(size=(120, 40)) as pilot:
        assert "No projects yet" in str(app.screen.query_one("#empty-hint", Static).render())
        await pilot.press("n")
        await pilot.press(*"bad/name")
        await pilot.press("tab", *"bio", "ctrl+s")
        assert "invalid project name" in str(app.screen.query_one("#error").render())
        name_input = app.screen.query_one("#name", Input)
        name_input.value = "cardio"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [p.name for p in projects.list_all(db)] == ["cardio"]
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen)
        assert "domain: bio" in str(app.screen.query_one("#overview", Static).render())
        await pilot.press("escape")
        await pilot.press("d")
        await pilot.press("n")  # keep it
        assert len(projects.list_all(db)) == 1
        await pilot.press("d", "y")
        await pilot.pause()
        assert projects.list_all(db) == []
        assert "deleted project cardio" in notes(app)


async def test_seeds_browse_filter_add_edit_delete(db, project) -> None:
    from engine.stages.seeds_io import read_seed_file

    seeds.import_drafts(db, project, "biomedicine", read_seed_file(paths.shipped_dir() / "biomedicine.jsonl"))
    held = seeds.list_seeds(db, project)[0]
    seeds.set_held_out(db, project, {held.id})
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SeedsScreen)
        table = screen.query_one(DataTable)
        total = table.row_count
        assert total >= 60 and "1 held out for evaluation" in str(screen.query_one("#title").render())
        assert str(table.get_row(str(held.id))[-1]) == "held out (eval)"
        await pilot.press("slash", *"metformin")
        await pilot.pause()
        assert 0 < table.row_count < total
        screen.query_one("#text", Input).value = ""
        screen.query_one("#task_type", Input).value = "ner"
        await pilot.pause()
        assert 0 < table.row_count < total
        screen.query_one("#task_type", Input).value = ""
        await pilot.pause()
        table.focus()

        await pilot.press("a")
        modal = app.screen
        modal.query_one("#instruction", TextArea).text = "Name the enzyme statins inhibit."
        modal.query_one("#output", TextArea).text = "HMG-CoA reductase."
        modal.query_one("#task_type", Input).value = "Open QA!"
        await pilot.press("ctrl+s")
        assert "task_type" in str(modal.query_one("#error").render())  # refused, modal stays
        modal.query_one("#task_type", Input).value = "open_qa"
        await pilot.press("ctrl+s")
        await pilot.pause()
        added = seeds.list_seeds(db, project, text="statins inhibit")
        assert [s.set_name for s in added] == ["manual"]

        row = [k for k, s in screen._rows.items() if s.id == added[0].id][0]
        table.move_cursor(row=table.get_row_index(row))
        await pilot.press("e")
        app.screen.query_one("#output", TextArea).text = "HMG-CoA reductase, the rate-limiting enzyme."
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert seeds.list_seeds(db, project, text="rate-limiting")[0].id == added[0].id
        await pilot.press("d", "y")
        await pilot.pause()
        assert seeds.list_seeds(db, project, text="statins inhibit") == []


async def test_seed_import_from_the_tui_reports_problems(db, project, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Q"}\n')
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"instruction": "Q", "output": "A"}) + "\n")
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "i")
        app.screen.query_one(Input).value = str(bad)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("field 'output': missing" in n for n in notes(app)))
        assert seeds.list_seeds(db, project) == []
        await pilot.press("i")
        app.screen.query_one(Input).value = str(good)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("imported 1 seeds" in n for n in notes(app)))
        assert app.screen.query_one(DataTable).row_count == 1


async def test_corpus_import_with_progress_then_search(db, project, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.md").write_text("Warfarin is monitored with the INR.\n\nIt inhibits vitamin K dependent factors.")
    (folder / "b.md").write_text("Asthma causes reversible airway obstruction and wheeze.")
    (folder / "broken.txt").write_bytes(b"\xff\xfe\x00\x00")
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(140, 45)) as pilot:
        await import_folder_in_tui(pilot, app, folder)
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        await wait_for(pilot, lambda: any("imported 2 documents" in n for n in notes(app)))
        assert any("broken.txt" in n for n in notes(app))
        assert screen.query_one("#documents", DataTable).row_count == 2
        stats = str(screen.query_one("#stats").render())
        assert "done" in stats
        await pilot.press("slash", *"airway wheeze", "enter")
        hits = screen.query_one("#hits", DataTable)
        await wait_for(pilot, lambda: hits.row_count > 0)
        assert "Asthma" in str(screen.query_one("#passage", Static).render())
        await pilot.press("escape")


async def test_a_folder_is_picked_in_the_tree_instead_of_typed(db, project, tmp_path: Path, monkeypatch) -> None:
    from textual.widgets import DirectoryTree

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Warfarin is monitored with the INR.")
    monkeypatch.chdir(tmp_path)  # the picker opens where the TUI was started
    app = SelfSpecApp(project="test")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c", "i")
        tree = app.screen.query_one("#picker", DirectoryTree)
        await wait_for(pilot, lambda: len(tree.root.children) > 0)
        tree.focus()
        await pilot.press("down", "enter")  # the root's first child: the docs folder
        box = app.screen.query_one("#path", Input)
        assert box.value == str(folder) and box.has_focus
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("imported 1 documents" in n for n in notes(app)))
