"""Jobs: every run going on, of every project. This app's own jobs (started from a stage screen)
and runs of other processes (another TUI, the CLI), read from the store with their last progress.

Keys: enter opens the job's stage screen, x cancels the highlighted job, r refreshes, escape back.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from engine.events import eta_text, rate_text
from engine.store import projects, runs
from selfspec_tui.jobs import Job, Jobs
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.widgets.plain_table import PlainTable

STAGE_SCREENS = {"generate": "generate", "train": "train", "export": "train", "eval run": "evaluate"}
"""a run's stage -> the project screen action that shows it"""


def job_row(job: Job) -> tuple[str, ...]:
    p = job.progress
    done = f"{p.done}/{p.total} {p.unit}" if p and p.total else (f"{p.done} {p.unit}" if p else "starting")
    stage = p.stage if p else job.key
    rate = rate_text(p.rate, "") if p else ""
    eta = eta_text(p.eta_s) if p and p.total and job.running else ""
    elapsed = time.monotonic() - job.started
    return (f"app #{job.id}", job.project, f"{job.label} ({stage})", job.state, done, rate, eta, eta_text(elapsed))


def run_row(run: Any, project: str) -> tuple[str, ...]:
    live = (run.counts or {}).get("progress") or {}
    total, unit = live.get("total"), live.get("unit", "")
    done = f"{live.get('done', 0)}/{total} {unit}" if total else (f"{live['done']} {unit}" if live else "starting")
    stage = f"{run.stage} ({live['stage']})" if live.get("stage") else run.stage
    eta = eta_text(live.get("eta_s")) if total else ""
    rate = rate_text(live.get("rate"), "")
    return (f"pid {run.pid}", project, stage, "running", done, rate, eta, run.started_at[11:19])


class JobsScreen(TableKeys, AppScreen):
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("enter", "open", "Open", show=True),
        Binding("x", "cancel", "Cancel job"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape,b", "app.pop_screen", "Back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Jobs: every run of every project", classes="screen-title")
        yield PlainTable(id="jobs", cursor_type="row")
        yield Static("", id="jobs-note", classes="hint")
        yield Footer()

    @property
    def jobs(self) -> Jobs:
        jobs: Jobs = getattr(self.app, "jobs")  # noqa: B009
        return jobs

    def on_mount(self) -> None:
        table = self.query_one("#jobs", DataTable)
        table.add_columns("job", "project", "stage", "state", "progress", "rate", "ETA", "time")
        self.action_refresh()
        self.set_interval(1.0, self.action_refresh)

    def action_refresh(self) -> None:
        table = self.query_one("#jobs", DataTable)
        row = table.cursor_row
        table.clear()
        mine = set()
        for job in reversed(self.jobs.all()):
            table.add_row(*job_row(job), key=f"job:{job.id}")
            mine.add(job.run.proc.pid if job.run.proc else -1)
        runs.reap_dead(self.db)
        names = {p.id: p.name for p in projects.list_all(self.db)}
        others = [r for r in runs.list_runs(self.db, limit=200) if r.status == runs.ACTIVE and r.pid not in mine]
        for r in others:
            table.add_row(*run_row(r, names.get(r.project_id or 0, "-")), key=f"run:{r.id}")
        if table.row_count:
            table.move_cursor(row=min(max(row, 0), table.row_count - 1))
        live = len(self.jobs.running()) + len(others)
        self.query_one("#jobs-note", Static).update(
            f"{live} running ({len(others)} in other processes)" if live else "nothing is running"
        )

    def _selected(self) -> tuple[str, int] | None:
        """("job", app job id) or ("run", run id) of the highlighted row."""
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        kind, ident = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value).split(":", 1)
        return kind, int(ident)

    def action_cancel(self) -> None:
        picked = self._selected()
        if picked is None:
            return
        kind, ident = picked
        if kind == "job":
            job = self.jobs.find(ident)
            if job is not None and self.jobs.cancel(job):
                self.notify(f"cancelling {job.label} of {job.project}: finished work is kept")
            return
        run = runs.get(self.db, ident)
        if run is None or run.status != runs.ACTIVE or not run.pid:
            return
        try:
            os.kill(run.pid, signal.SIGTERM)  # the engine stops at its next safe point, as with ctrl+x
        except OSError as exc:
            self.notify(f"cannot cancel process {run.pid}: {exc.strerror}", severity="error")
            return
        self.notify(f"asked process {run.pid} ({run.stage}) to stop: finished work is kept")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()  # the table takes enter itself

    def action_open(self) -> None:
        picked = self._selected()
        if picked is None:
            return
        kind, ident = picked
        if kind == "job":
            job = self.jobs.find(ident)
            project, stage = (job.project, job.key) if job else (None, "")
        else:
            run = runs.get(self.db, ident)
            names = {p.id: p.name for p in projects.list_all(self.db)}
            project, stage = (names.get(run.project_id or 0), run.stage) if run else (None, "")
        if stage.startswith("mixture"):  # mixtures span projects: their own screen
            from selfspec_tui.screens.mixtures import MixturesScreen

            stack = self.app.screen_stack
            if len(stack) >= 2 and isinstance(stack[-2], MixturesScreen):
                self.app.pop_screen()  # it is right under this one: go back to it
            else:
                self.app.push_screen(MixturesScreen())
            return
        action = STAGE_SCREENS.get(stage)
        if not project or action is None:
            self.notify("this job has no screen of its own", severity="warning")
            return
        from selfspec_tui.screens.project import ProjectScreen

        screen = ProjectScreen(project)
        self.app.push_screen(screen)
        getattr(screen, f"action_{action}")()  # the stage screen on top; escape leads to the project
