"""Review: accept, reject, edit, flag and undo generated examples by keyboard, at any scale.

The screen keeps only the ordered ids (and statuses) of what the filter selects; the table
draws a screenful at a time. A decision writes one transaction and then updates just the rows
it changed and the status counts, so a key press costs the same with 10 or 50,000 examples.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Select, Static

from engine.errors import UserError
from engine.store import dropped, generation, projects, review
from engine.store.records import Project
from selfspec_tui.errors import user_message
from selfspec_tui.screens import review_views as views
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.screens.modals import AskModal, SeedModal
from selfspec_tui.screens.review_actions import FileActions, MarkActions
from selfspec_tui.widgets.text_pane import TextPane
from selfspec_tui.widgets.virtual_table import Cells, VirtualTable

COLUMNS = views.COLUMNS
STATUS_STYLE = views.STATUS_STYLE
SORT_ORDER = [c.key for c in COLUMNS if c.key != "mark"]
POLL_S = 2.0
DROPPED = "dropped"  # the status filter's read-only view of tasks the generation filters dropped


class ReviewScreen(TableKeys, MarkActions, FileActions, AppScreen):
    BINDINGS = [
        Binding("a", "decide('accepted')", "Accept"),
        Binding("r", "decide('rejected')", "Reject"),
        Binding("n", "next_pending", "Next pending"),
        Binding("e", "edit", "Edit"),
        Binding("u", "undo", "Undo"),
        Binding("f", "flag", "Flag"),
        Binding("space", "mark", "Mark"),
        Binding("t", "rate", "Rate 1-5"),
        Binding("A", "bulk('accepted')", "Accept marked/shown"),
        Binding("R", "bulk('rejected')", "Reject marked/shown"),
        Binding("x", "export", "Export"),
        Binding("i", "import", "Import"),
        Binding("m", "similar", "More like this"),
        Binding("slash", "search", "Search"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("0", "status('all')", "All", show=False),
        Binding("1", "status('pending')", "Pending", show=False),
        Binding("2", "status('accepted')", "Accepted", show=False),
        Binding("3", "status('rejected')", "Rejected", show=False),
        Binding("4", "status('edited')", "Edited", show=False),
        Binding("5", "status('dropped')", "Dropped", show=False),
        Binding("ctrl+l", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str, generation_id: int | None = None) -> None:
        super().__init__()
        self.project_name = name
        self.session = f"tui-{uuid.uuid4().hex[:12]}"
        self.sort = "id"
        self.descending = False
        self.status_of: dict[int, str] = {}
        self.counts: dict[str, int] = {}
        self.start_generation = generation_id
        self._debounce: Timer | None = None
        self._seen_version = 0
        self.dropped_mode = False
        self.dropped_total = 0
        self.similar: tuple[int, tuple[int, ...]] | None = None
        """(example, the ids most like it) while Review shows only those (m; esc goes back)"""
        self.marked: set[int] = set()
        """examples marked with space: the bulk keys and the rating act on these when there are any"""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="review-title", classes="screen-title")
        yield Static("", id="review-counts")
        with Horizontal(id="review-filters"):
            yield Select(
                [(s, s) for s in ("all", *review.STATUSES)] + [("dropped by filters", DROPPED)],
                value="all",
                allow_blank=False,
                id="f-status",
                compact=True,
            )
            yield Select([("all runs", -1)], value=-1, allow_blank=False, id="f-run", compact=True)
            yield Input(placeholder="task type", id="f-type", compact=True)
            yield Input(placeholder="flag / reason", id="f-reason", compact=True)
            yield Input(placeholder="search instruction, input, response (/)", id="f-search", compact=True)
        yield VirtualTable(COLUMNS, self._load_rows, id="examples")
        yield TextPane(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.project: Project = projects.get(self.db, self.project_name)
        runs: list[tuple[str, int]] = [("all runs", -1)]
        runs += [(f"generation {g.id}", g.id) for g in generation.list_for(self.db, self.project)]
        runs.append(("imported", review.IMPORTED))
        run_select = self.query_one("#f-run", Select)
        run_select.set_options(runs)
        run_select.value = self.start_generation if self.start_generation is not None else -1
        self._seen_version = review.data_version(self.db)
        self.reload(keep=None)
        self.query_one(VirtualTable).focus()
        self.set_interval(POLL_S, self._poll)

    # ---- data ---------------------------------------------------------------------------------

    def current_filter(self) -> review.Filter:
        status = str(self.query_one("#f-status", Select).value)
        run = self.query_one("#f-run", Select).value
        return review.Filter(
            status="" if status in ("all", DROPPED) else status,
            task_type=self.query_one("#f-type", Input).value.strip(),
            reason=self.query_one("#f-reason", Input).value.strip(),
            generation=None if run == -1 else int(str(run)),
            search=self.query_one("#f-search", Input).value,
            ids=self.similar[1] if self.similar else (),
        )

    def reload(self, keep: int | None = None) -> None:
        """Query the filter again (a new filter or sort, or someone else's changes)."""
        table = self.query_one(VirtualTable)
        self.dropped_mode = self.query_one("#f-status", Select).value == DROPPED
        try:
            f = self.current_filter()
            if self.dropped_mode:
                found = [(i, DROPPED) for i in dropped.ids(self.db, self.project, f, self.sort, self.descending)]
            else:
                found = review.ids(self.db, self.project, f, self.sort, self.descending)
            self.counts = review.counts(self.db, self.project)
            self.dropped_total = dropped.count(self.db, self.project)
        except (UserError, sqlite3.Error) as exc:
            self.notify(str(exc), severity="error")
            return
        self.status_of = dict(found)
        table.sort_mark = {self.sort: " ▼" if self.descending else " ▲"}
        table.set_keys([k for k, _ in found], keep=keep if keep is not None else table.current)
        self._show_counts()
        self._show_detail()

    def _load_rows(self, ids: list[int]) -> dict[int, Cells]:
        if self.dropped_mode:
            return {i: views.dropped_cells(c) for i, c in dropped.get_many(self.db, ids).items()}
        return {i: views.example_cells(v, i in self.marked) for i, v in review.row_views(self.db, ids).items()}

    def _show_counts(self) -> None:
        line = views.counts_line(self.counts, self.dropped_total, len(self.status_of))
        line += f"    │ marked {len(self.marked):,} (space)" if self.marked else ""
        self.query_one("#review-counts", Static).update(line)
        f = self.current_filter()
        what = ", ".join(f"{k}: {v}" for k, v in vars(f).items() if v not in ("", None, False, ()))
        if self.similar:
            what = ", ".join(x for x in what.split(", ") if not x.startswith("ids:"))
            what = f"the {len(self.similar[1])} most like #{self.similar[0]} (esc: all)" + (f", {what}" if what else "")
        self.query_one("#review-title", Static).update(
            f"Review · {self.project_name}"
            + (f" · {escape(what)}" if what else "")
            + f" · sort: {self.sort}{' (descending)' if self.descending else ''}"
        )

    def _show_detail(self) -> None:
        key = self.query_one(VirtualTable).current
        detail = self.query_one("#detail", TextPane)
        if key is None:
            detail.update("[dim]no examples match the filter[/dim]" if self.counts else "")
            return
        if self.dropped_mode:
            c = dropped.get_many(self.db, [key]).get(key)
            if c is not None:
                detail.update(views.dropped_detail(c))
            return
        try:
            detail.update(views.example_detail(self.db, review.get(self.db, key)))
        except UserError:
            detail.update(f"[dim]example {key} was deleted elsewhere; ctrl+l reloads[/dim]")

    def _apply(self, changed: dict[int, tuple[str, str]]) -> None:
        """Fold a decision's changes into the counts and the shown rows, nothing more."""
        for key, (old, new) in changed.items():
            self.counts[old] = self.counts.get(old, 0) - 1
            self.counts[new] = self.counts.get(new, 0) + 1
            if key in self.status_of:
                self.status_of[key] = new
        table = self.query_one(VirtualTable)
        table.forget(None if len(changed) > 200 else set(changed))
        self._show_counts()

    def _poll(self) -> None:
        """Another window or the CLI wrote to the store: redraw from it (cheap when nobody did)."""
        try:
            version = review.data_version(self.db)
        except sqlite3.Error:
            return
        if version != self._seen_version:
            self._seen_version = version
            self.counts = review.counts(self.db, self.project)
            self.query_one(VirtualTable).forget()
            self._show_counts()
            self._show_detail()

    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=10)
        except sqlite3.Error as exc:
            self.notify(user_message(exc, f"{what} not saved") or str(exc), severity="error", timeout=10)
        return None

    # ---- events -------------------------------------------------------------------------------

    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        self._show_detail()

    def on_virtual_table_header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        if event.column.key not in SORT_ORDER:
            return
        if event.column.key == self.sort:
            self.descending = not self.descending
        else:
            self.sort, self.descending = event.column.key, False
        self.reload()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted and hasattr(self, "project"):
            self.reload()

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(0.15, self.reload)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # the focus stays in the box: letters typed next must never act on an example
        self.reload()

    # ---- actions ------------------------------------------------------------------------------

    def _read_only(self) -> bool:
        if self.dropped_mode:
            self.notify("dropped tasks are shown to audit the filters; they have no answer to review")
        return self.dropped_mode

    def action_decide(self, status: str) -> None:
        if self._read_only():
            return
        table = self.query_one(VirtualTable)
        key = table.current
        if key is None:
            return
        done = self._guard(
            status, lambda: review.set_status(self.db, self.project, review.Filter(ids=(key,)), status, self.session)
        )
        if done is None:
            return
        self._apply(done.changed)
        table.action_move(1)
        if table.current == key:
            self._show_detail()

    def action_next_pending(self) -> None:
        table = self.query_one(VirtualTable)
        n = len(table.keys)
        for step in range(1, n + 1):
            row = (table.cursor + step) % n
            if self.status_of.get(table.keys[row]) == "pending":
                table.cursor = row
                return
        self.notify("no pending examples among those shown")

    def action_edit(self) -> None:
        if self._read_only():
            return
        key = self.query_one(VirtualTable).current
        if key is None:
            return
        e = review.get(self.db, key)
        values = {"instruction": e.instruction, "input": e.input, "output": e.output, "task_type": e.task_type}

        def saved(fields: dict[str, Any] | None) -> None:
            if not fields:
                return
            done = self._guard("edit", lambda: review.edit(self.db, self.project, key, fields, self.session))
            if done is None:
                return
            if done.action_id is None:
                self.notify("nothing changed")
                return
            self._apply(done.changed)
            self._show_detail()
            self.notify(f"example {key} saved as version {review.get(self.db, key).version}")

        self.app.push_screen(SeedModal(f"Edit example {key} (the original is kept)", values), saved)

    def action_flag(self) -> None:
        if self._read_only():
            return
        key = self.query_one(VirtualTable).current
        if key is None:
            return
        current = review.get(self.db, key).flag

        def given(reason: str | None) -> None:
            if reason is None:
                return
            done = self._guard(
                "flag", lambda: review.set_flag(self.db, self.project, review.Filter(ids=(key,)), reason, self.session)
            )
            if done is not None:
                self._apply(done.changed)
                self._show_detail()

        self.app.push_screen(AskModal(f"Flag example {key}: why? (empty removes the flag)", "reason", current), given)

    def action_undo(self) -> None:
        done = self._guard("undo", lambda: review.undo(self.db, self.project, self.session))
        if done is None:
            self.notify("nothing to undo")
            return
        self._apply(done.reverted)
        if done.reverted:
            first = min(done.reverted)
            table = self.query_one(VirtualTable)
            row = table.row_of(first)
            if row is not None:
                table.cursor = row
        self._show_detail()
        msg = f"undid {done.kind} of {len(done.reverted)} example(s)"
        if done.conflicts:
            msg += f"; {len(done.conflicts)} changed elsewhere since, left alone"
        self.notify(msg, severity="warning" if done.conflicts else "information")

    def action_search(self) -> None:
        self.query_one("#f-search", Input).focus()

    def action_sort(self) -> None:
        self.sort = SORT_ORDER[(SORT_ORDER.index(self.sort) + 1) % len(SORT_ORDER)]
        self.descending = False
        self.reload()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.reload()

    def action_status(self, status: str) -> None:
        self.query_one("#f-status", Select).value = status

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        if isinstance(self.focused, Input | Select):
            self.query_one(VirtualTable).focus()
        elif self.similar:
            self.similar = None  # back to the whole filter
            self.reload()
        else:
            self.app.pop_screen()
