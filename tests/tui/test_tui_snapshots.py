"""Every screen at 80x24 (the smallest terminal it must be fully usable in) and at 200x50 (where it
should use the room), one snapshot each. Snapshot files live in __snapshots__; after an intended
layout change, look at them (pytest --snapshot-report) and update them with --snapshot-update."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from engine import paths
from engine.stages.seeds_io import read_seed_file
from engine.store import open_store, projects, review, seeds
from engine.store.review import Filter
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.chat import ChatScreen
from tests.helpers import fill

SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
SCREENS = {
    # name: keys pressed from the project page ("" stays there; "esc" goes back to the project list)
    "projects": ["escape"],
    "project": [],
    "seeds": ["s"],
    "corpus": ["c"],
    "generate": ["g"],
    "review": ["v", "down", "down"],
    "train": ["t"],
    "chat": ["h"],
    "evaluate": ["e"],
    "jobs": ["ctrl+t"],
    "keys": ["question_mark"],
    "mixtures": ["escape", "x"],
}


def _project() -> None:
    db = open_store()
    p = projects.create(db, "snap", "biomedicine", "smollm2-135m-instruct", {})
    seeds.import_drafts(db, p, "biomedicine", read_seed_file(paths.shipped_dir() / "biomedicine.jsonl"))
    ids = fill(db, p, 30, seed=11)
    review.set_status(db, p, Filter(ids=tuple(ids[:3])), "accepted", "x")
    review.set_flag(db, p, Filter(ids=(ids[4],)), "check the dose", "x")
    db.close()


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_screen_at_both_sizes(snap_compare, home, monkeypatch, screen: str, size: str) -> None:
    _project()
    # the chat engine child would change the status line while the snapshot is taken: not started here
    monkeypatch.setattr(ChatScreen, "start_session", lambda self: None)

    async def before(pilot) -> None:
        await pilot.pause()
        for key in SCREENS[screen]:
            await pilot.press(key)
            await pilot.pause()
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False  # a blinking cursor would be caught on or off
        await pilot.pause(0.3)

    assert snap_compare(SelfSpecApp(project="snap"), run_before=before, terminal_size=SIZES[size])
