"""Evaluate: run base vs expert on evaluation sets, and read the results as a table and a bar chart."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static, Switch
from textual_plotext import PlotextPlot

from engine.eval_report import chart_series, table_rows
from engine.store import evals, projects, seeds
from selfspec_tui.engine_client import EngineRun
from selfspec_tui.widgets.run_progress import RunProgress

# (input id, CLI flag, label, default)
FIELDS: list[tuple[str, str, str, str]] = [
    ("data", "--data", "data .jsonl (a.jsonl,b.jsonl)", ""),
    ("pubmedqa", "--pubmedqa", "PubMedQA .json", ""),
    ("models", "--model", "models (baseline first)", ""),
    ("shots", "--shots", "shots", "0"),
    ("limit", "--limit", "items per set", ""),
]


def engine_args(project: str, values: dict[str, str], seeds_on: bool, off_domain: bool, new: bool) -> list[str]:
    """The `eval run` command line for the form."""
    args = ["eval", "run", "--project", project]
    for key, flag, _, _ in FIELDS:
        value = values.get(key, "").strip()
        if not value:
            continue
        if key in ("data", "models"):
            for part in (p.strip() for p in value.split(",")):
                if part:
                    args += [flag, part]
        else:
            args += [flag, value]
    if not seeds_on:
        args.append("--no-seeds")
    if not off_domain:
        args.append("--no-off-domain")
    if new:
        args.append("--new")
    return args


class EvaluateScreen(Screen[None]):
    BINDINGS = [
        Binding("ctrl+r", "start(False)", "Evaluate / resume", priority=True),
        Binding("ctrl+n", "start(True)", "New evaluation", priority=True),
        Binding("ctrl+x", "cancel", "Cancel", priority=True),
        Binding("ctrl+h", "hold_out", "Hold out 20% of seeds", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._run: EngineRun | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title")
        with Grid(id="eval-form"):
            for key, _, label, default in FIELDS:
                with Vertical(classes="field"):
                    yield Label(label)
                    yield Input(default, id=key)
            with Vertical(classes="field"):
                yield Label("held-out seeds")
                yield Switch(True, id="use-seeds")
            with Vertical(classes="field"):
                yield Label("off-domain check")
                yield Switch(True, id="off-domain")
        yield RunProgress(id="progress")
        with Horizontal(id="eval-live"):
            yield DataTable(id="evals", cursor_type="row")
            with Vertical(id="eval-right"):
                yield PlotextPlot(id="eval-chart")
                yield DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="eval-summary", classes="hint")
        yield Footer()

    @property
    def db(self) -> Any:
        return self.app.db  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self.query_one("#evals", DataTable).add_columns("eval", "status", "models", "domain Δ", "off-domain Δ")
        self.refresh_evals(show_newest=True)
        self.query_one("#evals", DataTable).focus()  # keys first; shift+tab walks back into the form

    def refresh_evals(self, show_newest: bool = False) -> None:
        project = projects.get(self.db, self.project_name)
        held = len(seeds.held_out(self.db, project))
        self.query_one("#title", Static).update(
            f"Evaluate {project.name}  ·  held-out seeds: {held} (ctrl+h reserves 20% before generating)"
        )
        table = self.query_one("#evals", DataTable)
        table.clear()
        found = evals.list_for(self.db, project)
        for ev in found:
            r = ev.results
            table.add_row(
                str(ev.id),
                ev.status,
                " vs ".join(ev.config.get("models", [])),
                _delta(r.get("domain_mean_difference")),
                _delta(r.get("off_domain_mean_difference")),
                key=str(ev.id),
            )
        if found and show_newest:
            table.move_cursor(row=len(found) - 1)
            self.show(found[-1].id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "evals" and event.row_key.value:
            self.show(int(event.row_key.value))

    def show(self, eval_id: int) -> None:
        ev = evals.get(self.db, eval_id)
        table = self.query_one("#eval-table", DataTable)
        table.clear(columns=True)
        summary = self.query_one("#eval-summary", Static)
        if ev.status != "done":
            summary.update(f"evaluation {ev.id} is {ev.status}: ctrl+r with the same settings finishes it")
            self.draw([], {}, [])
            return
        header, rows = table_rows(ev.results)
        table.add_columns(*header)
        for row in rows:
            table.add_row(*[Text(cell) for cell in row])
        self.draw(*chart_series(ev.results))
        parts = [f"evaluation {ev.id}: {' vs '.join(ev.results.get('models', []))}"]
        for key, label in (("domain_mean_difference", "domain"), ("off_domain_mean_difference", "off-domain")):
            if key in ev.results:
                parts.append(f"{label} Δ {ev.results[key]:+.3f}")
        summary.update(Text("  ·  ".join(parts)))

    def draw(self, names: list[str], per_model: dict[str, list[float]], chance: list[float]) -> None:
        chart = self.query_one(PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("main score per dataset (macro-F1 / ROUGE-L) vs the best no-reading baseline")
        if names:
            short = [n if len(n) <= 18 else n[:17] + "…" for n in names]
            series = [*per_model.values(), chance]
            plt.multiple_bar(short, series, labels=[*per_model.keys(), "baseline"])  # type: ignore[call-arg]
            plt.ylim(0, 1)
        chart.refresh()

    def on_engine_event(self, event: dict[str, Any]) -> None:
        self.query_one(RunProgress).show_event(event)

    def action_start(self, new: bool) -> None:
        if self._run is not None:
            self.notify("an evaluation is already running", severity="warning")
            return
        values = {key: self.query_one(f"#{key}", Input).value for key, _, _, _ in FIELDS}
        use_seeds = self.query_one("#use-seeds", Switch).value
        off_domain = self.query_one("#off-domain", Switch).value
        self.run_stage(engine_args(self.project_name, values, use_seeds, off_domain, new), "evaluating")

    def action_hold_out(self) -> None:
        if self._run is None:
            self.run_stage(["seeds", "hold-out", "--project", self.project_name, "--fraction", "0.2"], "holding out")

    def action_cancel(self) -> None:
        if self._run:
            self._run.cancel()
            self.notify("cancelling: scored items are kept; ctrl+r resumes")

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#evals", DataTable).focus()
        elif self._run is not None:
            self.notify("an evaluation is running: ctrl+x cancels it first", severity="warning")
        else:
            self.app.pop_screen()

    @work(exclusive=True, group="eval")
    async def run_stage(self, args: list[str], label: str) -> None:
        progress = self.query_one(RunProgress)
        progress.begin(label)
        self._run = EngineRun(*args)
        try:
            outcome = await self._run.run(self.on_engine_event)
        finally:
            self._run = None
        progress.end(outcome.message)
        last = outcome.last or {}
        s = last.get("summary", {})
        if outcome.code == 0 and last.get("event") == "finished":
            if args[0] == "seeds":
                self.notify(f"held out {s.get('held_out')} of {s.get('seeds')} seeds for evaluation", timeout=10)
            else:
                self.notify(
                    f"evaluation {s.get('eval_id')}: domain Δ {s.get('domain_mean_difference', '-')}, "
                    f"off-domain Δ {s.get('off_domain_mean_difference', '-')}",
                    timeout=15,
                )
        elif last.get("event") == "interrupted":
            self.notify("evaluation cancelled; ctrl+r resumes it", severity="warning", timeout=10)
        else:
            self.notify(outcome.message, severity="error", timeout=20)
        self.refresh_evals(show_newest=True)


def _delta(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, int | float) else "-"
