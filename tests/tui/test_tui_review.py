"""The Review screen through Pilot: every key, bulk actions with confirmation, undo, filters,
sorting, a second window writing to the same project, and layout snapshots."""

from __future__ import annotations

import json

from textual.widgets import Input, Select, TextArea

from engine.store import dropped as dropped_tasks
from engine.store import open_store, projects, review
from engine.store.review import Filter
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.review import ReviewScreen
from selfspec_tui.widgets.text_pane import TextPane
from selfspec_tui.widgets.virtual_table import VirtualTable
from tests.helpers import fill, make_project, notes, wait_for

SIZE = (150, 44)


async def open_review(pilot) -> ReviewScreen:
    await pilot.press("v")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen)
    return screen


def table(screen) -> VirtualTable:
    return screen.query_one(VirtualTable)


def detail(screen) -> str:
    return screen.query_one("#detail", TextPane).plain


async def test_single_keys_decide_move_and_undo(db, project) -> None:
    ids = fill(db, project, 25, seed=1)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        t = table(screen)
        assert t.keys == ids and t.current == ids[0]
        assert f"#{ids[0]}" in detail(screen) and "Instruction" in detail(screen)
        assert "pending 25" in str(screen.query_one("#review-counts").render())
        await pilot.press("a")  # accept, then the cursor moves on
        assert review.get(db, ids[0]).status == "accepted" and t.current == ids[1]
        await pilot.press("r")
        assert review.get(db, ids[1]).status == "rejected" and t.current == ids[2]
        counts = str(screen.query_one("#review-counts").render())
        assert "pending 23" in counts and "accepted 1" in counts and "rejected 1" in counts
        await pilot.press("home", "n")  # next pending skips the two decided rows
        assert t.current == ids[2]
        await pilot.press("u")  # undo the reject
        assert review.get(db, ids[1]).status == "pending" and t.current == ids[1]
        await pilot.press("u")
        assert review.get(db, ids[0]).status == "pending"
        await pilot.press("u")
        assert "nothing to undo" in notes(app)[-1]
        await pilot.press("down", "down", "up")
        assert t.current == ids[1]
        await pilot.press("end")
        assert t.current == ids[-1]


async def test_edit_flag_and_undo_of_the_edit(db, project) -> None:
    ids = fill(db, project, 5, seed=2)
    original = review.get(db, ids[0])
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("e")
        area = app.screen.query_one("#output", TextArea)
        assert area.text == original.output
        area.text = "A corrected, sourced answer."
        await pilot.press("ctrl+s")
        await pilot.pause()
        e = review.get(db, ids[0])
        assert (e.status, e.version, e.output) == ("edited", 1, "A corrected, sourced answer.")
        assert "version 1 (original kept)" in detail(screen) and "Changes from the original (version 0)" in detail(
            screen
        )
        shown = detail(screen).split("Changes from the original (version 0)")[1]
        assert f"output: -{' '.join(original.output.split())} +A corrected, sourced answer." in shown  # a word diff
        await pilot.press("e")
        app.screen.query_one("#output", TextArea).text = ""
        await pilot.press("ctrl+s")  # invalid: the dialog stays and says why
        assert "is empty" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        assert review.get(db, ids[0]).version == 1
        await pilot.press("f")
        await pilot.press(*"wrong dose", "enter")
        assert review.get(db, ids[0]).flag == "wrong dose" and "flag: wrong dose" in detail(screen)
        await pilot.press("u", "u")  # unflag, then un-edit
        e = review.get(db, ids[0])
        assert (e.flag, e.status, e.output, e.version) == ("", "pending", original.output, 0)
        assert "version" not in detail(screen).split("\n")[0]


async def test_bulk_actions_ask_first_and_undo_as_one(db, project) -> None:
    fill(db, project, 40, seed=3)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        screen.query_one("#f-type", Input).value = "qa"
        await pilot.press("enter")  # the type field has focus? submit re-queries either way
        await wait_for(pilot, lambda: len(table(screen).keys) < 40)
        shown = list(table(screen).keys)
        assert shown and all(review.get(db, i).task_type == "qa" for i in shown)
        table(screen).focus()
        await pilot.press("A")
        assert f"Accept all {len(shown)} shown" in str(app.screen.query_one("#question").render())
        await pilot.press("n")  # no: nothing happens
        assert review.counts(db, project)["accepted"] == 0
        await pilot.press("A", "y")
        assert review.counts(db, project)["accepted"] == len(shown)
        assert f"accepted {len(shown)}" in str(screen.query_one("#review-counts").render())
        await pilot.press("R", "y")
        assert review.counts(db, project)["rejected"] == len(shown)
        await pilot.press("u")
        assert review.counts(db, project)["accepted"] == len(shown)
        await pilot.press("u")
        assert review.counts(db, project)["pending"] == 40


async def test_filters_search_status_keys_and_sorting(db, project) -> None:
    ids = fill(db, project, 60, seed=4)
    review.set_status(db, project, Filter(ids=tuple(ids[:5])), "accepted", "x")
    review.set_flag(db, project, Filter(ids=(ids[7],)), "unsupported claim", "x")
    gen = review.get(db, ids[0]).generation_id
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("2")
        await pilot.pause()
        assert table(screen).keys == ids[:5]
        await pilot.press("1")
        await pilot.pause()
        assert len(table(screen).keys) == 55
        await pilot.press("0", "/")
        assert screen.focused is screen.query_one("#f-search", Input)
        target = review.get(db, ids[11]).instruction.split()[1]  # "11:" -> the task number word
        await pilot.press(*"Task 11", "enter")
        await wait_for(pilot, lambda: ids[11] in table(screen).keys and len(table(screen).keys) < 60)
        assert target and screen.focused is screen.query_one("#f-search", Input)  # typing goes on there
        screen.query_one("#f-search", Input).value = ""
        screen.query_one("#f-reason", Input).value = "unsupported"
        await wait_for(pilot, lambda: table(screen).keys == [ids[7]])
        screen.query_one("#f-reason", Input).value = ""
        screen.query_one("#f-run", Select).value = 0  # imported
        await wait_for(pilot, lambda: len(table(screen).keys) == 6)
        screen.query_one("#f-run", Select).value = gen
        await wait_for(pilot, lambda: all(review.get(db, i).generation_id == gen for i in table(screen).keys))
        screen.query_one("#f-run", Select).value = -1
        await wait_for(pilot, lambda: len(table(screen).keys) == 60)
        table(screen).focus()
        await pilot.press("s")  # sort by status
        assert screen.sort == "status" and table(screen).keys[:5] == ids[:5]  # accepted < pending
        await pilot.press("S")
        assert screen.descending and table(screen).keys[-5:] == list(reversed(ids[:5]))
        widths = table(screen)._widths()
        x = sum(w + 1 for w in widths[:7]) + 1  # inside the 8th header cell, "chars"
        await pilot.click(VirtualTable, offset=(x, 0))
        assert screen.sort == "length" and not screen.descending
        rows = review.row_views(db, table(screen).keys)
        assert [rows[i].chars for i in table(screen).keys] == sorted(rows[i].chars for i in rows)
        await pilot.press("escape")
        assert not isinstance(app.screen, ReviewScreen)
        await pilot.pause()
        assert "examples: 60 (5 approved, 55 to review)" in str(app.screen.query_one("#counts").render())


async def test_a_second_window_writing_is_picked_up(db, project) -> None:
    ids = fill(db, project, 10, seed=5)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        other = open_store()  # another TUI instance or the CLI
        review.set_status(other, projects.get(other, "test"), Filter(ids=(ids[0], ids[1])), "rejected", "other")
        other.close()
        await wait_for(pilot, lambda: "rejected 2" in str(screen.query_one("#review-counts").render()), 10)
        assert "rejected" in detail(screen).split("\n")[0]
        await pilot.press("u")  # this window's undo does not touch the other window's work
        assert review.get(db, ids[0]).status == "rejected"


async def test_real_generated_examples_show_passages(db) -> None:
    from tests.helpers import run_engine

    make_project("t")
    assert run_engine("generate", "--project", "t", "--target", "3", "--seed", "1").returncode == 0
    app = SelfSpecApp(project="t")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert len(table(screen).keys) == 3
        text = detail(screen)
        assert "Retrieved passages" in text and "score 0." in text
        assert any(src in text for src in (".md", ".txt", ".jsonl"))
        project = projects.get(db, "t")
        dropped = dropped_tasks.ids(db, project, Filter())
        assert dropped, "the fake generator's run should have dropped some tasks"
        await pilot.press("5")  # the read-only view of what the filters dropped
        await wait_for(pilot, lambda: table(screen).keys == dropped)
        first = dropped_tasks.get_many(db, dropped[:1])[dropped[0]]
        assert "Reason" in detail(screen) and first.reason in detail(screen)
        await pilot.press("a")
        assert "no answer to review" in notes(app)[-1]
        screen.query_one("#f-reason", Input).value = first.reason
        await wait_for(pilot, lambda: table(screen).keys == dropped_tasks.ids(db, project, Filter(reason=first.reason)))


async def test_empty_project_and_store_errors_are_notices(db, project, monkeypatch) -> None:
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert table(screen).keys == [] and "no examples match" in detail(screen)
        await pilot.press("a", "e", "f", "A", "n")  # nothing selected: nothing happens, no crash
        assert isinstance(app.screen, ReviewScreen)
    ids = fill(db, project, 3)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)

        def locked(*a, **k):
            import sqlite3

            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(review, "set_status", locked)
        await pilot.press("a")
        assert any("not saved: the store" in n and "is busy" in n for n in notes(app))
        assert review.get(db, ids[0]).status == "pending" and isinstance(app.screen, ReviewScreen)


def _snapshot_project(with_decisions: bool) -> None:
    db = open_store()
    p = projects.create(db, "snap", "biomedicine", "smollm2-135m-instruct", {})
    ids = fill(db, p, 30, seed=11)
    if with_decisions:
        review.set_status(db, p, Filter(ids=tuple(ids[:3])), "accepted", "x")
        review.set_status(db, p, Filter(ids=(ids[3],)), "rejected", "x")
        review.set_flag(db, p, Filter(ids=(ids[4],)), "check the dose", "x")
    db.close()


def test_layout_snapshot(snap_compare, home) -> None:
    _snapshot_project(with_decisions=True)
    assert snap_compare(SelfSpecApp(project="snap"), press=["v", "down", "down"], terminal_size=(120, 36))


def test_layout_snapshot_narrow_with_filter(snap_compare, home) -> None:
    _snapshot_project(with_decisions=False)

    async def before(pilot) -> None:
        await pilot.press("v")
        await pilot.pause()
        pilot.app.screen.query_one("#f-search", Input).value = "insulin"
        await pilot.pause(0.3)

    assert snap_compare(SelfSpecApp(project="snap"), run_before=before, terminal_size=(90, 30))


async def test_remaining_keys_paging_status_views_and_reload(db, project) -> None:
    ids = fill(db, project, 120, seed=6)
    review.set_status(db, project, Filter(ids=tuple(ids[:4])), "rejected", "x")
    review.edit(db, project, ids[5], {**_fields(review.get(db, ids[5])), "output": "Edited."}, "x")
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        t = table(screen)
        await pilot.press("pagedown")
        page = t.cursor
        assert page > 5
        await pilot.press("pagedown", "pageup")
        assert t.cursor == page
        await pilot.press("G")
        assert t.current == ids[-1]
        await pilot.press("g", "j", "j", "k")
        assert t.current == ids[1]
        await pilot.press("3")
        await wait_for(pilot, lambda: t.keys == ids[:4])
        await pilot.press("4")
        await wait_for(pilot, lambda: t.keys == [ids[5]])
        await pilot.press("0")
        await wait_for(pilot, lambda: len(t.keys) == 120)
        db.execute("DELETE FROM examples WHERE id = ?", [ids[0]])  # behind the screen's back
        await pilot.press("ctrl+l")
        assert len(t.keys) == 119 and ids[0] not in t.keys


async def test_export_and_import_from_the_review_screen(db, project, tmp_path) -> None:
    ids = fill(db, project, 12, seed=7)
    review.set_status(db, project, Filter(ids=tuple(ids[:5])), "accepted", "x")
    out = tmp_path / "train.jsonl"
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("x")
        app.screen.query_one("#format", Select).value = "openai"
        app.screen.query_one("#out", Input).value = str(out)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("exported 5 examples" in n for n in notes(app)))
        assert [list(json.loads(x)) for x in out.read_text().splitlines()] == [["messages"]] * 5
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"instruction": "fine", "output": "ok"}\n{"instruction": 3, "output": "ok"}\n')
        await pilot.press("i", *str(bad), "enter")
        await wait_for(pilot, lambda: any(f"{bad}:2: field 'instruction'" in n for n in notes(app)))
        assert len(table(screen).keys) == 12
        good = tmp_path / "good.jsonl"
        good.write_text('{"instruction": "Name two loop diuretics.", "output": "Furosemide and bumetanide."}\n')
        await pilot.press("i", *str(good), "enter")
        await wait_for(pilot, lambda: len(table(screen).keys) == 13)
        assert any("imported 1 examples" in n for n in notes(app))


def _fields(e) -> dict[str, str]:
    return {"instruction": e.instruction, "input": e.input, "output": e.output, "task_type": e.task_type}


async def test_marks_ratings_and_marked_bulk_actions(db, project, tmp_path) -> None:
    ids = fill(db, project, 10, seed=5)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("space", "down", "space")  # mark the 1st and 3rd (space moves on)
        assert screen.marked == {ids[0], ids[2]} and "marked 2 (space)" in str(
            screen.query_one("#review-counts").render()
        )
        await pilot.press("t", "4", "enter")  # a rating for the marked ones
        assert [review.get(db, i).rating for i in ids[:4]] == [4, None, 4, None]
        assert "rated 2 example(s) 4/5" in notes(app)
        await pilot.press("A")
        assert "Accept 2 marked examples?" in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        assert [review.get(db, i).status for i in ids[:4]] == ["accepted", "pending", "accepted", "pending"]
        assert screen.marked == set()  # done with them
        table(screen).cursor = 1
        await pilot.press("t", "9", "enter")  # not a rating: refused, nothing stored
        assert review.get(db, ids[1]).rating is None and any("a rating is 1 to 5" in n for n in notes(app))
        await pilot.press("t", "2", "enter")  # no marks: the highlighted example
        assert review.get(db, ids[1]).rating == 2 and "rated 2/5" in detail(screen)
        await pilot.press("t", "enter")  # empty clears
        assert review.get(db, ids[1]).rating is None
    # the rating is exported with the example (and is a column in Parquet)
    out = tmp_path / "rated.jsonl"
    from tests.helpers import run_engine

    r = run_engine("dataset", "export", "--project", "test", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [row.get("rating") for row in rows] == [4, 4]
    pq = tmp_path / "rated.parquet"
    assert run_engine("dataset", "export", "--project", "test", "--format", "parquet", "--out", str(pq)).returncode == 0
    import pyarrow.parquet as parquet

    assert parquet.read_table(pq).column("rating").to_pylist() == [4, 4]


async def test_export_folder_picked_in_the_tree(db, project, tmp_path, monkeypatch) -> None:
    from textual.widgets import DirectoryTree

    ids = fill(db, project, 4, seed=8)
    review.set_status(db, project, Filter(ids=tuple(ids)), "accepted", "x")
    (tmp_path / "a-out").mkdir()  # sorts before the test home
    monkeypatch.chdir(tmp_path)
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        await open_review(pilot)
        await pilot.press("x")
        tree = app.screen.query_one("#picker", DirectoryTree)
        await wait_for(pilot, lambda: len(tree.root.children) > 0)
        tree.focus()
        await pilot.press("down", "enter")  # the out folder: a file name is proposed in it
        assert app.screen.query_one("#out", Input).value == str(tmp_path / "a-out" / "training-alpaca.jsonl")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("exported 4 examples" in n for n in notes(app)))
        assert len((tmp_path / "a-out" / "training-alpaca.jsonl").read_text().splitlines()) == 4


async def test_more_like_this_shows_the_closest_examples_and_esc_returns(db, project) -> None:
    ids = fill(db, project, 25, seed=9)
    first = review.get(db, ids[0])
    twin = {"instruction": first.instruction, "input": first.input, "output": "other", "task_type": "qa"}
    review.edit(db, project, ids[11], twin, "t")
    app = SelfSpecApp(project="test")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("m")  # the engine embeds every example (fake-hash embedder here)
        await wait_for(pilot, lambda: screen.similar is not None, 60)
        shown = list(table(screen).keys)
        assert len(shown) == 20 and ids[0] not in shown and ids[11] in shown
        assert f"the 20 most like #{ids[0]} (esc: all)" in str(screen.query_one("#review-title").render())
        await pilot.press("escape")
        assert screen.similar is None and len(table(screen).keys) == 25 and isinstance(app.screen, ReviewScreen)
