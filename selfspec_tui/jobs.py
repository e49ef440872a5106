"""Background jobs: engine runs owned by the app, not by the screen that started them.

A stage screen starts its run here and may be left while it runs: the run goes on in its engine
child, the header and the Jobs screen show its progress, and a notification says how it ended. A
screen that opens while its stage runs attaches to the job and replays what it missed. Runs of
other processes (another TUI, the CLI) are read from the store's runs table, whose `counts` the
engine keeps at the latest progress while a run is active.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.spec import events as ev
from selfspec_tui.engine_client import EngineRun, RunOutcome

REPLAY = 300
"""events kept per job, replayed to a screen that attaches later"""

Listener = Callable[["Job", ev.Event | None], None]
"""called with each event, then once with None when the job has ended"""


@dataclass
class Job:
    id: int
    project: str
    key: str
    """which screen shows it: the stage screen's command ("generate", "train", "eval run")"""
    label: str
    args: list[str]
    run: EngineRun
    started: float = field(default_factory=time.monotonic)
    progress: ev.Progress | None = None
    outcome: RunOutcome | None = None
    events: list[ev.Event] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.outcome is None

    @property
    def state(self) -> str:
        if self.outcome is None:
            return "cancelling" if self.run.cancelled else "running"
        if self.outcome.interrupted:
            return "cancelled"
        return "finished" if self.outcome.code == 0 and self.outcome.finished else "failed"


class Jobs:
    """The app's runs. `start` needs a way to run a coroutine as an app worker and to notify."""

    def __init__(self, run_worker: Callable[..., Any], notify: Callable[..., None]) -> None:
        self._run_worker = run_worker
        self._notify = notify
        self._jobs: list[Job] = []
        self._next = 1
        self.changed: list[Callable[[], None]] = []
        """called when a job starts, reports progress or ends (the header's job line)"""

    def all(self) -> list[Job]:
        return list(self._jobs)

    def running(self) -> list[Job]:
        return [j for j in self._jobs if j.running]

    def active(self, project: str, key: str) -> Job | None:
        """The running job a stage screen of this project shows, if any."""
        found = [j for j in self._jobs if j.running and j.project == project and j.key == key]
        return found[-1] if found else None

    def find(self, job_id: int) -> Job | None:
        return next((j for j in self._jobs if j.id == job_id), None)

    def start(self, project: str, key: str, args: list[str], label: str) -> Job:
        job = Job(self._next, project, key, label, list(args), EngineRun(*args))
        self._next += 1
        self._jobs.append(job)
        self._run_worker(self._drive(job), group="jobs", name=f"job-{job.id}")
        self._changed()
        return job

    def cancel(self, job: Job) -> bool:
        if not job.running:
            return False
        job.run.cancel()
        self._changed()
        return True

    def cancel_all(self) -> int:
        return sum(self.cancel(j) for j in self.running())

    async def _drive(self, job: Job) -> None:
        def on_event(event: ev.Event) -> None:
            if isinstance(event, ev.Progress):
                job.progress = event
            job.events.append(event)
            del job.events[:-REPLAY]
            for listener in list(job.listeners):
                listener(job, event)
            if isinstance(event, ev.Progress):
                self._changed()

        try:
            job.outcome = await job.run.run(on_event)
        except OSError as exc:  # the engine could not be started at all
            job.outcome = RunOutcome(1, ev.Failed(f"cannot start the engine: {exc}"))
        watched = bool(job.listeners)  # a screen showing the job says how it ended itself
        for listener in list(job.listeners):
            listener(job, None)
        if not watched:  # nobody is looking at it: say how it ended wherever the user is
            self._notify(ending_text(job), severity=_severity(job), timeout=15)
        self._changed()

    def _changed(self) -> None:
        for hook in list(self.changed):
            hook()

    def summary(self) -> str:
        """One line for the header: the running jobs and how far each is."""
        live = self.running()
        if not live:
            return ""
        parts = []
        for j in live[:2]:
            p = j.progress
            where = f"{p.done}/{p.total}" if p and p.total else (str(p.done) if p else "starting")
            parts.append(f"{j.label} · {j.project} {where}")
        more = f" (+{len(live) - 2})" if len(live) > 2 else ""
        return f"jobs: {'; '.join(parts)}{more} · ctrl+t lists them"


def ending_text(job: Job) -> str:
    outcome = job.outcome
    assert outcome is not None
    if outcome.interrupted:
        return f"{job.label} of {job.project} cancelled: finished work is kept, run it again to resume"
    if outcome.code == 0 and outcome.finished:
        return f"{job.label} of {job.project} finished"
    return f"{job.label} of {job.project} failed: {outcome.message}"


def _severity(job: Job) -> str:
    outcome = job.outcome
    if outcome is None or (outcome.code == 0 and outcome.finished):
        return "information"
    return "warning" if outcome.interrupted else "error"
