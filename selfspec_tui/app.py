"""Wires the screens together; the store connection lives here for the UI thread."""

from __future__ import annotations

from typing import Any

from textual.app import App

from engine.errors import UserError
from engine.store import open_store, projects
from selfspec_tui.errors import HANDLED, user_message
from selfspec_tui.screens.project import ProjectScreen
from selfspec_tui.screens.projects import ProjectsScreen


class SelfSpecApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "selfspec-tui"
    SUB_TITLE = "carve a domain expert out of a local LLM"

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.db = open_store()
        self.start_project = project

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
