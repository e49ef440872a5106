"""Wires the screens together; the store connection lives here for the UI thread."""

from __future__ import annotations

from textual.app import App

from engine.errors import UserError
from engine.store import open_store, projects
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

    def open_project(self, name: str) -> None:
        try:
            projects.get(self.db, name)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(ProjectScreen(name))
