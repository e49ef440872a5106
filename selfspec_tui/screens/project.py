"""A project's dashboard: what it holds, recent runs, and keys to each stage's screen."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from engine.store import projects, runs
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.widgets.plain_table import PlainTable


class ProjectScreen(TableKeys, AppScreen):
    BINDINGS = [
        Binding("s", "seeds", "Seeds"),
        Binding("c", "corpus", "Corpus"),
        Binding("g", "generate", "Generate"),
        Binding("v", "review", "Review"),
        Binding("t", "train", "Train"),
        Binding("h", "chat", "Chat"),
        Binding("e", "evaluate", "Evaluate"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape,b", "app.pop_screen", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="overview", classes="screen-title", markup=False)
        yield Static("", id="counts")
        yield Static("", id="state", classes="hint")
        yield Static("Recent runs", classes="section")
        yield PlainTable(id="runs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns("id", "stage", "status", "started", "ended", "note")
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        db = self.db
        p = projects.get(db, self.project_name)
        s = projects.summary(db, p)
        self.query_one("#overview", Static).update(
            Text(f"{p.name}  ·  domain: {p.domain}  ·  base model: {p.base_model}")
        )
        self.query_one("#counts", Static).update(
            f"seeds: {s['seeds']} in {s['seed_sets']} set(s)    documents: {s['documents']}"
            f"    chunks: {s['chunks']} ({s['embedded']} embedded)"
            f"    examples: {s['examples']} ({s['approved']} approved, {s['pending']} to review)"
        )
        self.query_one("#state", Static).update(state_text(db, p))
        runs.reap_dead(db)
        table = self.query_one("#runs", DataTable)
        table.clear()
        for r in runs.list_runs(db, p.id, limit=20):
            live = r.counts.get("progress") if r.status == "running" else None
            if isinstance(live, dict):  # a running stage keeps its latest progress in its row
                total = f"/{live.get('total')}" if live.get("total") else ""
                note = f"{live.get('stage', '')} {live.get('done', 0)}{total} {live.get('unit', '')}"
            else:
                note = r.error or ", ".join(f"{k}={v}" for k, v in list(r.counts.items())[:4])
            if r.status == "interrupted":
                note = "interrupted: run it again to resume. " + note
            table.add_row(str(r.id), r.stage, r.status, r.started_at, r.ended_at or "", note[:80])

    def action_seeds(self) -> None:
        from selfspec_tui.screens.seeds import SeedsScreen

        self.app.push_screen(SeedsScreen(self.project_name))

    def action_corpus(self) -> None:
        from selfspec_tui.screens.corpus import CorpusScreen

        self.app.push_screen(CorpusScreen(self.project_name))

    def action_generate(self) -> None:
        from selfspec_tui.screens.generate import GenerateScreen

        self.app.push_screen(GenerateScreen(self.project_name))

    def action_review(self) -> None:
        from selfspec_tui.screens.review import ReviewScreen

        self.app.push_screen(ReviewScreen(self.project_name))

    def action_train(self) -> None:
        from selfspec_tui.screens.train import TrainScreen

        self.app.push_screen(TrainScreen(self.project_name))

    def action_chat(self) -> None:
        from selfspec_tui.screens.chat import ChatScreen

        self.app.push_screen(ChatScreen(self.project_name))

    def action_evaluate(self) -> None:
        from selfspec_tui.screens.evaluate import EvaluateScreen

        self.app.push_screen(EvaluateScreen(self.project_name))


def state_text(db: Any, project: Any) -> str:
    """Where the project stands past its data: the current expert, its exports, the last evaluation."""
    from engine.eval_report import headline_text
    from engine.store import adapters, evals

    expert = adapters.current(db, project) or next(iter(adapters.list_for(db, project)[-1:]), None)
    if expert is None:
        return "expert: none trained yet (t: Train)"
    loss = expert.metrics.get("final_loss")
    trained_on = f"{expert.examples} examples" + (
        ", unreviewed ones included" if expert.config.get("train", {}).get("include_pending") else ""
    )
    parts = [
        f"expert: {expert.name} ({expert.status}, {trained_on}"
        + (f", loss {loss:.3f})" if isinstance(loss, int | float) else ")")
    ]
    done = [e for e in adapters.exports_for(db, expert) if e.status == "done"]
    if done:
        quants = sorted(k for k in done[-1].files if k not in ("merged", "modelfile") and not k.startswith("adapter"))
        parts.append("export: " + (", ".join(quants) if quants else "done"))
    finished = [e for e in evals.list_for(db, project) if e.status == "done"]
    if finished:
        parts.append(f"evaluation {finished[-1].id}: {headline_text(finished[-1].results)}")
    return "    ".join(parts)
