"""What every stage screen shares: the settings form, the run, progress, cancel and the outcome
notices. A stage screen says which command it runs and keeps only its own live view.

The run is a job of the app (selfspec_tui.jobs): leaving the screen leaves it running, and coming
back attaches to it again, with the events it missed replayed.

Keys: ctrl+r runs or resumes, ctrl+n starts a new one, ctrl+x cancels (the work done is kept and
the same key resumes it), escape leaves the form or the screen (a run goes on in the background).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.binding import Binding
from textual.widgets import Input

from engine.spec import events as ev
from engine.spec.commands import stage
from engine.spec.stage import Command
from selfspec_tui.forms import form_args
from selfspec_tui.jobs import Job, Jobs
from selfspec_tui.messages import EngineEvent, RunEnded
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.widgets.run_progress import RunProgress
from selfspec_tui.widgets.stage_form import StageForm


class RunScreen(AppScreen):
    COMMAND: ClassVar[str] = ""
    """the stage's command (engine.spec.commands), e.g. "generate" """
    NOUN: ClassVar[str] = "a run"
    """what a run is called in notices ("a generation")"""
    LABEL: ClassVar[str] = "run"
    """the progress bar's title and the cancel notice's subject ("generation")"""
    LEAVE_FOCUS: ClassVar[str] = ""
    """the widget escape moves to from a form field"""
    CANCEL_NOTE: ClassVar[str] = "cancelling: finished work is kept and the run resumes where it stopped"

    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        # priority: these must work while a form field has focus (Input binds ctrl+x to cut)
        Binding("ctrl+r", "start(False)", "Run / resume", priority=True),
        Binding("ctrl+n", "start(True)", "New", priority=True),
        Binding("ctrl+x", "cancel", "Cancel", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._job: Job | None = None

    @property
    def jobs(self) -> Jobs:
        jobs: Jobs = getattr(self.app, "jobs")  # noqa: B009 (screens run inside SelfSpecApp)
        return jobs

    @property
    def job_key(self) -> str:
        return self.COMMAND

    @property
    def command(self) -> Command:
        return stage(self.COMMAND)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    def form(self) -> StageForm:
        return self.query_one(StageForm)

    # ---- what a stage screen provides ------------------------------------------------------

    def command_args(self, new: bool) -> list[str]:
        """The command line for the form's values (a screen overrides it to add its own switches)."""
        args = [*self.command.name.split(), "--project", self.project_name]
        return args + form_args(self.command, self.form().values()) + (["--new"] if new else [])

    def on_stage_event(self, event: ev.Event) -> None:
        """Draw the stage's own live view from an event (progress is drawn already)."""

    def finished_note(self, args: list[str], summary: dict[str, Any]) -> str:
        return "done"

    def after_run(self) -> None:
        """Refresh what the run changed."""

    def resume_key(self, args: list[str]) -> str:
        return "ctrl+r"

    # ---- shared ----------------------------------------------------------------------------

    def action_start(self, new: bool) -> None:
        if self.running:
            self.notify(f"{self.NOUN} is already running", severity="warning")
            return
        self.launch(self.command_args(new), self.LABEL)

    def launch(self, args: list[str], label: str) -> None:
        if self.running:
            self.notify(f"{self.NOUN} is running: ctrl+x cancels it first", severity="warning")
            return
        self.query_one(RunProgress).begin(label)
        self._follow(self.jobs.start(self.project_name, self.job_key, args, label))

    def on_mount(self) -> None:
        """Coming back to a stage whose run goes on: attach to it and replay what was missed."""
        job = self.jobs.active(self.project_name, self.job_key)
        if job is not None:
            self.query_one(RunProgress).begin(job.label)
            for event in job.events:
                self._post_event(event)
            self._follow(job)

    def on_unmount(self) -> None:
        if self._job is not None and self._listen in self._job.listeners:
            self._job.listeners.remove(self._listen)

    def _follow(self, job: Job) -> None:
        self._job = job
        job.listeners.append(self._listen)

    def _listen(self, job: Job, event: ev.Event | None) -> None:
        if event is not None:
            self._post_event(event)
            return
        job.listeners.remove(self._listen)
        assert job.outcome is not None
        self.post_message(RunEnded(job.outcome, job.args, job.label))

    def _post_event(self, event: ev.Event) -> None:
        self.post_message(EngineEvent(event))

    @on(EngineEvent)
    def _on_engine_event(self, message: EngineEvent) -> None:
        self.query_one(RunProgress).show_event(message.event)
        self.on_stage_event(message.event)

    @on(RunEnded)
    def _on_run_ended(self, message: RunEnded) -> None:
        outcome, args, label = message.outcome, message.args, message.label
        self.query_one(RunProgress).end(outcome.message)
        if outcome.code == 0 and outcome.finished:
            self.notify(self.finished_note(args, outcome.summary), timeout=15)
        elif outcome.interrupted:
            self.notify(f"{label} cancelled; {self.resume_key(args)} resumes it", severity="warning", timeout=10)
        else:
            self.notify(outcome.message, severity="error", timeout=20)
        self.after_run()

    def action_cancel(self) -> None:
        if self._job is not None and self.jobs.cancel(self._job):
            self.notify(self.CANCEL_NOTE)

    def action_back(self) -> None:
        if isinstance(self.focused, Input) and self.LEAVE_FOCUS:
            self.query_one(self.LEAVE_FOCUS).focus()
            return
        if self.running:
            self.notify(f"the {self.LABEL} goes on in the background: ctrl+t lists jobs", timeout=6)
        self.app.pop_screen()
