"""Wires the screens together; the store connection lives here for the UI thread."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from engine.errors import UserError
from engine.store import open_store, projects
from selfspec_tui.errors import HANDLED, user_message
from selfspec_tui.jobs import Jobs
from selfspec_tui.screens.project import ProjectScreen
from selfspec_tui.screens.projects import ProjectsScreen


def short_paths(text: str) -> str:
    """`text` with the user's home folder written as ~ (a path in a toast then keeps its file name)."""
    home = str(Path.home()).rstrip(os.sep)
    return text.replace(home + os.sep, "~" + os.sep) if home else text


class SelfSpecApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "selfspec-tui"
    SUB_TITLE = "carve a domain expert out of a local LLM"
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("ctrl+t", "jobs", "Jobs", priority=True),
        Binding("question_mark,f1", "help", "Keys", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
    ]

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.db = open_store()
        self.start_project = project
        self.jobs = Jobs(self.run_worker, self.notify)
        self.jobs.changed.append(self._show_jobs)
        self._quit_armed = False

    def _show_jobs(self) -> None:
        self.sub_title = self.jobs.summary() or self.SUB_TITLE

    def action_jobs(self) -> None:
        from selfspec_tui.screens.jobs import JobsScreen

        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen())

    def action_help(self) -> None:
        from selfspec_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        """Quitting with jobs running asks once; the second ctrl+q cancels them (their work is kept)."""
        live = self.jobs.running()
        if live and not self._quit_armed:
            self._quit_armed = True
            self.notify(
                f"{len(live)} job(s) running: ctrl+q again cancels them (finished work is kept) and quits",
                severity="warning",
                timeout=8,
            )
            return
        self.jobs.cancel_all()
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette holds the screen's own actions beside the app's."""
        yield from super().get_system_commands(screen)
        seen = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if b.action in seen or not active.enabled or b.action in ("quit", "command_palette"):
                continue
            seen.add(b.action)
            node = active.node
            title = b.description or b.action.replace("_", " ")
            yield SystemCommand(title, f"key {key}", _runner(node, b.action))

    def on_mount(self) -> None:
        self.push_screen(ProjectsScreen())
        if self.start_project:
            self.open_project(self.start_project)

    async def _dispatch_action(self, namespace: Any, action_name: str, params: Any) -> bool:
        """A key's action that the store or an input refuses becomes a notification, not a crash."""
        try:
            return await super()._dispatch_action(namespace, action_name, params)
        except HANDLED as exc:
            self.notify(user_message(exc) or str(exc), severity="error", timeout=15)
            return True

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications carry file names, seed text and engine messages: shown as written (a '[' in a
        path is not console markup), with the home folder written as ~ so a path fits the toast."""
        super().notify(short_paths(message), title=title, severity=severity, timeout=timeout, markup=markup)

    def _handle_exception(self, error: Exception) -> None:
        inner = getattr(error, "error", error)  # a failed worker wraps its exception
        message = user_message(inner)
        if message is not None:
            self.notify(message, severity="error", timeout=15)
            return
        super()._handle_exception(error)

    def open_project(self, name: str) -> None:
        try:
            projects.get(self.db, name)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(ProjectScreen(name))


def _runner(node: Any, action: str) -> Any:
    async def run() -> None:
        await node.run_action(action)

    return run
