"""The first screen: every project, with create, open and delete; x opens the mixtures of experts
(Self-MoE), which span projects."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from engine.store import projects, registry
from selfspec_tui.errors import HANDLED, user_message
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.screens.modals import NewProjectModal, confirm_then
from selfspec_tui.widgets.plain_table import PlainTable

DEFAULT_MODEL = "smollm2-135m-instruct"


class ProjectsScreen(TableKeys, AppScreen):
    BINDINGS = [
        Binding("n", "new", "New project"),
        Binding("enter", "open", "Open", priority=True),
        Binding("d", "delete", "Delete"),
        Binding("x", "mixtures", "Mixtures"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Projects", classes="screen-title")
        yield PlainTable(id="projects", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "domain", "base model", "seeds", "documents", "chunks")
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        db = self.db
        table = self.query_one(DataTable)
        table.clear()
        rows = projects.list_all(db)
        for p in rows:
            s = projects.summary(db, p)
            table.add_row(
                p.name, p.domain, p.base_model, str(s["seeds"]), str(s["documents"]), str(s["chunks"]), key=p.name
            )
        hint = "" if rows else "No projects yet: press n to create one, or run `selfspec-tui demo`."
        self.query_one("#empty-hint", Static).update(hint)

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def action_new(self) -> None:
        db = self.db
        models = [DEFAULT_MODEL] + [m.name for m in registry.list_all(db)]

        def created(values: dict[str, str] | None) -> None:
            if not values:
                return
            try:
                projects.create(db, values["name"], values["domain"], values["base_model"])
            except HANDLED as exc:
                self.notify(user_message(exc) or str(exc), severity="error")
                return
            self.notify(f"created project {values['name']}")
            self.action_refresh()

        self.app.push_screen(NewProjectModal(models), created)

    def action_mixtures(self) -> None:
        from selfspec_tui.screens.mixtures import MixturesScreen

        self.app.push_screen(MixturesScreen())

    def action_open(self) -> None:
        name = self._selected()
        if name:
            self.app.open_project(name)  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        name = self._selected()
        if name:
            confirm_then(
                self,
                f"Delete project '{name}' with its seeds, corpus and runs?",
                lambda: projects.delete(self.db, name),
                f"deleted project {name}",
                self.action_refresh,
            )
