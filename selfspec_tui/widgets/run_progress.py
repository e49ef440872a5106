"""A progress bar with counts, rate and ETA for one engine run, driven by its events."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from engine.events import describe_progress
from engine.spec import events as ev


class RunProgress(Vertical):
    """Hidden until a run starts; shows the current phase, its bar and its numbers."""

    def compose(self) -> ComposeResult:
        yield Label("", id="phase")
        yield ProgressBar(total=None, show_eta=False, id="bar")
        yield Label("", id="stats", markup=False)

    def on_mount(self) -> None:
        self.display = False

    def begin(self, title: str) -> None:
        self.display = True
        self.query_one("#phase", Label).update(title)
        self.query_one("#stats", Label).update("starting the engine...")
        self.query_one(ProgressBar).update(total=None, progress=0)

    def show_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            bar = self.query_one(ProgressBar)
            bar.update(total=event.total if event.total else None, progress=event.done)
            self.query_one("#phase", Label).update(event.stage)
            self.query_one("#stats", Label).update(Text(describe_progress(event)))
        elif isinstance(event, ev.Log):
            self.query_one("#stats", Label).update(Text(event.message[:200]))

    def end(self, message: str) -> None:
        self.query_one("#stats", Label).update(Text(message))
        bar = self.query_one(ProgressBar)
        if bar.total is None:
            bar.update(total=1, progress=1)
