"""What every stage receives: the store, an event sink, the project and a stop flag."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from engine import paths
from engine.errors import Interrupted
from engine.events import Event, Progress, Sink
from engine.spec import events as ev
from engine.store.records import Project

__all__ = ["Context", "Interrupted"]


@dataclass
class Context:
    db: Database
    emit: Sink
    project: Project | None = None
    run_id: int | None = None
    threads: int = 1
    stop_flag: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.stop_flag.is_set()

    def check_stop(self) -> None:
        if self.stop_flag.is_set():
            raise Interrupted()

    def log(self, message: str, level: str = "info") -> None:
        self.emit(ev.Log(message, level))  # type: ignore[arg-type]

    def result(self, data: object) -> None:
        self.emit(ev.Result(data))

    def table(self, header: list[str], rows: Sequence[Sequence[object]], empty: str = "", **extra: object) -> None:
        """A table result (the text renderer draws it; the TUI reads the rows)."""
        self.result({"view": "table", "header": header, "rows": rows, **({"empty": empty} if empty else {}), **extra})

    def progress(self, stage: str, total: int | None, unit: str, done: int = 0) -> Progress:
        progress = Progress(self.emit, stage, total, unit, done)
        self.emit(progress.snapshot())
        return progress

    def need_project(self) -> Project:
        if self.project is None:
            raise RuntimeError("this stage needs a project")
        return self.project

    @property
    def workdir(self) -> Path:
        return paths.project_dir(self.need_project().name)

    @contextmanager
    def exclusive(self, unit: str, command: str = "") -> Iterator[None]:
        """Hold the project's lock on `unit` (generation, training, ...) for the body: a second
        process asking for it is refused at once with who holds it."""
        from engine.store import locks

        with locks.held(self.db, self.need_project().id, unit, command or unit):
            yield

    def send(self, event: Event) -> None:
        self.emit(event)
