"""Mixtures: several projects' experts behind one learned router (Self-MoE).

Pick finished experts (ctrl+n), train the router (ctrl+r; the form holds its settings), see where
each domain's tokens are routed, export for llama.cpp (ctrl+e), ask a question (a: per token in
transformers; g: per prompt on llama.cpp) and see which expert answered, and evaluate base, each
expert alone and the mixture on every domain (ctrl+v), and delete one (d; its experts stay). Runs go
on in the background like any stage.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from engine.spec import events as ev
from engine.spec.kinds import JobStatus
from engine.store import adapters, mixtures, projects
from selfspec_tui.forms import form_args
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.screens.modals import AskModal, confirm_then
from selfspec_tui.screens.run_screen import RunScreen
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress
from selfspec_tui.widgets.stage_form import StageForm

JOBS = "mixtures"
"""the name the app's job list files these runs under (they span projects)"""


def finished_experts(db: Any) -> list[str]:
    """Every trained expert of every project, as PROJECT/ADAPTER."""
    return [
        f"{p.name}/{a.name}"
        for p in projects.list_all(db)
        for a in adapters.list_for(db, p)
        if a.status == JobStatus.DONE
    ]


class MixturesScreen(TableKeys, RunScreen):
    COMMAND = "mixture train"
    NOUN = "a mixture run"
    LABEL = "router"
    LEAVE_FOCUS = "#mixtures"
    CANCEL_NOTE = "cancelling: the router's checkpoint is kept; ctrl+r resumes"
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("ctrl+e", "export", "Export GGUF", priority=True),
        Binding("ctrl+v", "evaluate", "Evaluate", priority=True),
        Binding("a", "ask(False)", "Ask"),
        Binding("g", "ask(True)", "Ask (GGUF)"),
        Binding("d", "delete", "Delete"),
    ]

    def __init__(self) -> None:
        super().__init__(JOBS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        yield StageForm(self.command, id="mixture-form")
        yield RunProgress(id="progress")
        yield PlainTable(id="mixtures", cursor_type="row")
        yield Static("", id="mixture-answer", markup=False)
        yield PlainTable(id="mixture-eval", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mixtures", DataTable).add_columns(
            "mixture", "status", "experts", "examples", "loss", "routing per domain"
        )
        self.query_one("#mixture-eval", DataTable).display = False
        self.refresh_mixtures()
        self.query_one("#mixtures", DataTable).focus()
        super().on_mount()

    def refresh_mixtures(self) -> None:
        table = self.query_one("#mixtures", DataTable)
        keep = self.selected()
        table.clear()
        found = mixtures.list_all(self.db)
        for m in found:
            routing = "; ".join(f"{d}: {m.share_text(s)}" for d, s in m.metrics.get("routing", {}).items())
            loss = m.metrics.get("final_loss")
            table.add_row(
                m.name, m.status, ", ".join(m.expert_names()), str(m.examples),
                "" if loss is None else f"{loss:.4f}", routing, key=m.name,
            )  # fmt: skip
        if keep is not None and keep in {m.name for m in found}:
            table.move_cursor(row=table.get_row_index(keep))
        experts = len(finished_experts(self.db))
        self.query_one("#title", Static).update(
            f"Mixtures of experts: {len(found)}  ·  trained experts to mix: {experts}"
            + ("  ·  ctrl+n picks two or more" if experts >= 2 else "  ·  train experts in two projects first")
        )

    def selected(self) -> str | None:
        table = self.query_one("#mixtures", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def _need(self) -> str | None:
        name = self.selected()
        if name is None:
            self.notify("no mixture yet: ctrl+n creates one", severity="warning")
        return name

    # ---- runs ------------------------------------------------------------------------------

    def command_args(self, new: bool) -> list[str]:
        name = self.selected() or ""
        return ["mixture", "train", name, *form_args(self.command, self.form().values())]

    def action_start(self, new: bool) -> None:
        if new:
            self.action_create()
        elif self._need():
            super().action_start(False)

    def action_create(self) -> None:
        offered = finished_experts(self.db)
        if len(offered) < 2:
            self.notify("a mixture needs two trained experts (train one in each of two projects)", severity="warning")
            return

        def named(name: str | None) -> None:
            if not name:
                return

            def picked(experts: str | None) -> None:
                if experts:
                    refs = [e.strip() for e in experts.replace(",", " ").split() if e.strip()]
                    args = ["mixture", "create", name] + [x for r in refs for x in ("--expert", r)]
                    self.launch(args, "create")

            self.app.push_screen(
                AskModal("Experts to mix (PROJECT/ADAPTER, space-separated)", value=" ".join(offered)), picked
            )

        self.app.push_screen(AskModal("New mixture: its name", placeholder="e.g. bio-fin"), named)

    def action_export(self) -> None:
        name = self._need()
        if name:
            self.launch(["mixture", "export", name], "export")

    def action_evaluate(self) -> None:
        name = self._need()
        if name:
            self.launch(["mixture", "eval", name, "--limit", "40"], "evaluation")

    def action_ask(self, gguf: bool) -> None:
        name = self._need()
        if not name:
            return

        def asked(question: str | None) -> None:
            if question:
                self.query_one("#mixture-answer", Static).update(f"asking {name} ...")
                self.launch(["mixture", "chat", name, "-q", question] + (["--gguf"] if gguf else []), "answer")

        self.app.push_screen(AskModal(f"Ask {name}" + (" (llama.cpp, one expert per prompt)" if gguf else "")), asked)

    def action_delete(self) -> None:
        name = self._need()
        if name:
            confirm_then(
                self,
                f"Delete mixture '{name}' with its router and exports?",
                lambda: mixtures.delete(self.db, name),
                f"deleted mixture {name}; its experts stay in their projects",
                self.refresh_mixtures,
            )

    def on_stage_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Result) and isinstance(event.data, dict) and event.data.get("view") == "table":
            table = self.query_one("#mixture-eval", DataTable)
            table.clear(columns=True)
            table.add_columns(*event.data["header"])
            for row in event.data["rows"]:
                table.add_row(*[Text(str(c)) for c in row])
            table.display = True

    def finished_note(self, args: list[str], summary: dict[str, Any]) -> str:
        if args[:2] == ["mixture", "chat"]:
            who = summary.get("answered_by") or summary.get("preferred_expert", "")
            self.query_one("#mixture-answer", Static).update(
                f"answered by {who}  ·  the question's tokens: {summary.get('prompt_routing', '')}\n"
                f"{summary.get('answer', '')}"
            )
            return f"{args[2]}: answered by {who}"
        if args[:2] == ["mixture", "create"]:
            return f"mixture {args[2]} created: ctrl+r trains its router"
        if args[:2] == ["mixture", "export"]:
            return f"mixture {args[2]} exported for llama.cpp: g asks it there"
        if args[:2] == ["mixture", "eval"]:
            return f"mixture {args[2]} evaluated (table below)"
        return f"router of {args[2]} trained: {summary.get('steps')} steps, loss {summary.get('final_loss')}"

    def after_run(self) -> None:
        self.refresh_mixtures()
