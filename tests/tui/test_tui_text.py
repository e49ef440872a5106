"""Text from users and files is shown as written: a '[' in a seed, a document title, a domain or a
path is never read as console markup (it used to close the app with a MarkupError); toasts keep a
long path's file name; every screen's footer shows the help key inside 80 columns."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey

from engine.schema import SeedDraft
from engine.store import corpus, open_store, projects, seeds
from engine.store.corpus import ChunkDraft
from selfspec_tui.app import SelfSpecApp, short_paths
from tests.helpers import notes, wait_for

HOSTILE = "Explain [/b] then [link=javascript:x]this[/link] and [/]"


def _hostile_project() -> None:
    db = open_store()
    p = projects.create(db, "brackets", "cardio [/] [b]x", "smollm2-135m-instruct", {})
    seeds.import_drafts(db, p, "set1", [SeedDraft(HOSTILE, "input [/i]", "output [red]", "qa[/]")])
    chunk = ChunkDraft(text="passage with [/] inside", char_start=0, char_end=23, n_tokens=6)
    corpus.add_document(db, p, "notes[1].txt", "title [/b]", "0" * 64, 23, [chunk])
    db.close()


def _cells(table: DataTable) -> str:
    return " ".join(str(cell) for row in range(table.row_count) for cell in table.get_row_at(row))


async def test_bracketed_text_is_shown_as_written_on_every_screen(home) -> None:
    _hostile_project()
    app = SelfSpecApp(project="brackets")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "cardio [/] [b]x" in str(app.screen.query_one("#overview", Static).render())
        await pilot.press("s")
        await pilot.pause()
        assert HOSTILE in _cells(app.screen.query_one(DataTable))
        detail = str(app.screen.query_one("#detail", Static).render())
        assert HOSTILE in detail and "input [/i]" in detail and "output [red]" in detail
        assert "[qa[/] 1]" in str(app.screen.query_one("#title", Static).render())
        await pilot.press("escape", "c")
        await pilot.pause()
        assert "title [/b]" in _cells(app.screen.query_one("#documents", DataTable))
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert "cardio [/] [b]x" in _cells(app.screen.query_one(DataTable))


async def test_toasts_show_paths_as_written_with_home_as_tilde(home) -> None:
    path = Path.home() / "exports" / "[b]ux-gen[/b]-alpaca[1].jsonl"
    assert short_paths(f"wrote {path}") == "wrote ~/exports/[b]ux-gen[/b]-alpaca[1].jsonl"
    app = SelfSpecApp()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.notify(f"exported 12 examples to {path}")
        await pilot.pause(0.5)
        assert notes(app) == ["exported 12 examples to ~/exports/[b]ux-gen[/b]-alpaca[1].jsonl"]
        toast = app.screen.query_one("Toast")
        shown = "".join("".join(seg.text for seg in toast.render_line(y)) for y in range(toast.size.height))
        assert "[b]ux-gen[/b]-alpaca[1].jsonl" in "".join(shown.split())


async def test_help_key_is_in_every_footer_at_80_columns(home) -> None:
    _hostile_project()
    app = SelfSpecApp(project="brackets")
    async with app.run_test(size=(80, 24)) as pilot:
        for keys in [[], ["s"], ["c"], ["g"], ["v"], ["t"], ["h"], ["e"], ["ctrl+t"], ["escape"]]:
            await pilot.press(*keys)

            def help_keys() -> list[FooterKey]:
                return [k for k in app.screen.query(FooterKey) if k.action == "app.help"]

            # laid out (a screen on a loaded machine may need more than a moment), then within 80 columns
            await wait_for(pilot, lambda: any(k.region.width > 0 for k in help_keys()), timeout=20,
                           seen=lambda: f"{type(app.screen).__name__}: {[k.region for k in help_keys()]}")  # fmt: skip
            shown = help_keys()
            assert shown[0].region.right <= 80 and shown[0].region.width > 0, type(app.screen).__name__
            if keys and keys != ["escape"]:
                await pilot.press("escape")
                await pilot.pause(0.2)
