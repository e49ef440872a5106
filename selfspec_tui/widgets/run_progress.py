"""A progress bar with counts, rate and ETA for one engine run, driven by its events."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from engine.events import describe_progress


class RunProgress(Vertical):
    """Hidden until a run starts; shows the current phase, its bar and its numbers."""

    def compose(self) -> ComposeResult:
        yield Label("", id="phase")
        yield ProgressBar(total=None, show_eta=False, id="bar")
        yield Label("", id="stats")

    def on_mount(self) -> None:
        self.display = False

    def begin(self, title: str) -> None:
        self.display = True
        self.query_one("#phase", Label).update(title)
        self.query_one("#stats", Label).update("starting the engine...")
        self.query_one(ProgressBar).update(total=None, progress=0)

    def show_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "progress":
            bar = self.query_one(ProgressBar)
            total = event.get("total")
            bar.update(total=total if total else None, progress=event.get("done", 0))
            self.query_one("#phase", Label).update(f"{event.get('stage', '')}")
            self.query_one("#stats", Label).update(describe_progress(event))
        elif kind == "log":
            self.query_one("#stats", Label).update(str(event.get("message", ""))[:200])

    def end(self, message: str) -> None:
        self.query_one("#stats", Label).update(message)
        bar = self.query_one(ProgressBar)
        if bar.total is None:
            bar.update(total=1, progress=1)
