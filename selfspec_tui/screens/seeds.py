"""Browse, filter, add, edit, delete and import seed tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Input, Static

from engine.store import projects, seeds
from engine.store.records import Seed
from selfspec_tui.engine_client import EngineRun
from selfspec_tui.errors import HANDLED, user_message
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.screens.modals import ConfirmModal, PathModal, SeedModal
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress


class SeedsScreen(TableKeys, AppScreen):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("i", "import", "Import"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._rows: dict[str, Seed] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        with Horizontal(id="filters"):
            yield Input(placeholder="filter text (/ to focus)", id="text")
            yield Input(placeholder="task type", id="task_type")
        yield PlainTable(id="seeds", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail", classes="detail")
        yield RunProgress(id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("id", "set", "task type", "instruction", "use")
        self.refresh_rows()
        self.query_one(DataTable).focus()

    @property
    def project(self) -> Any:
        return projects.get(self.db, self.project_name)

    def refresh_rows(self) -> None:
        db = self.db
        text = self.query_one("#text", Input).value.strip()
        ttype = self.query_one("#task_type", Input).value.strip()
        found = seeds.list_seeds(db, self.project, text, ttype)
        table = self.query_one(DataTable)
        keep = self._selected()
        table.clear()
        self._rows = {}
        for s in found:
            self._rows[str(s.id)] = s
            use = "held out (eval)" if s.held_out else "generation"
            table.add_row(str(s.id), s.set_name, s.task_type, " ".join(s.instruction.split())[:90], use, key=str(s.id))
        if keep is not None and str(keep.id) in self._rows:
            table.move_cursor(row=table.get_row_index(str(keep.id)))
        types = ", ".join(f"{t} {n}" for t, n in seeds.task_types(db, self.project))
        held = sum(1 for x in found if x.held_out)
        self.query_one("#title", Static).update(
            Text(
                f"Seeds of {self.project_name}: {len(found)} shown"
                + (f", {held} held out for evaluation" if held else "")
                + (f"   [{types}]" if types else "")
            )
        )
        self._show_detail()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        pass  # the filter applies as you type; the focus stays in the box (esc or tab: the table)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _selected(self) -> Seed | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self._rows.get(str(key.value))

    def _show_detail(self) -> None:
        s = self._selected()
        text = (
            ""
            if s is None
            else (
                f"[b]Instruction[/b] {escape(s.instruction)}\n[b]Input[/b] {escape(s.input or '(none)')}\n"
                f"[b]Output[/b] {escape(s.output)}"
            )
        )
        self.query_one("#detail", Static).update(text)

    def action_filter(self) -> None:
        self.query_one("#text", Input).focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(DataTable).focus()
        else:
            self.app.pop_screen()

    def action_add(self) -> None:
        def saved(fields: dict[str, Any] | None) -> None:
            if not fields:
                return
            try:
                seeds.add_seed(self.db, self.project, "manual", fields)
            except HANDLED as exc:
                self.notify(user_message(exc) or str(exc), severity="error")
                return
            self.notify("seed added to set 'manual'")
            self.refresh_rows()

        self.app.push_screen(SeedModal("Add seed"), saved)

    def action_edit(self) -> None:
        s = self._selected()
        if s is None:
            return
        values = {"instruction": s.instruction, "input": s.input, "output": s.output, "task_type": s.task_type}

        def saved(fields: dict[str, Any] | None) -> None:
            if not fields:
                return
            try:
                seeds.update_seed(self.db, s.id, fields)
            except HANDLED as exc:
                self.notify(user_message(exc) or str(exc), severity="error")
                return
            self.notify(f"seed {s.id} saved")
            self.refresh_rows()

        self.app.push_screen(SeedModal(f"Edit seed {s.id}", values), saved)

    def action_delete(self) -> None:
        s = self._selected()
        if s is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                seeds.delete_seed(self.db, s.id)
                self.notify(f"seed {s.id} deleted")
                self.refresh_rows()

        self.app.push_screen(ConfirmModal(f"Delete seed {s.id}?"), confirmed)

    def action_import(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_import(str(Path(path).expanduser()))

        self.app.push_screen(PathModal("Import seeds from .jsonl, .csv or qna.yaml", "path to a seed file"), chosen)

    @work(exclusive=True, group="seeds-import")
    async def run_import(self, path: str) -> None:
        progress = self.query_one(RunProgress)
        progress.begin(f"importing {path}")
        run = EngineRun("seeds", "import", path, "--project", self.project_name)
        outcome = await run.run(progress.show_event)
        progress.end(outcome.message)
        if outcome.code == 0 and outcome.last:
            s = outcome.summary
            self.notify(
                f"imported {s.get('added', 0)} seeds into '{s.get('seed_set')}'"
                f" ({s.get('already_present', 0)} already there)"
            )
        else:
            self.notify(outcome.message, severity="error", timeout=15)
        self.refresh_rows()
