"""Evaluate: run base vs expert on evaluation sets, and read the results as a table and a bar chart."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from engine.eval_report import chart_series, headline_text, table_rows
from engine.spec.commands import stage
from engine.spec.kinds import JobStatus
from engine.store import evals, projects, seeds
from selfspec_tui.forms import form_args
from selfspec_tui.screens.run_screen import RunScreen
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress
from selfspec_tui.widgets.stage_form import StageForm

EVAL = stage("eval run")


def engine_args(project: str, values: dict[str, Any], seeds_on: bool, off_domain: bool, new: bool) -> list[str]:
    """The `eval run` command line for the form."""
    values = {**values, "seeds": seeds_on, "off_domain": off_domain}
    return ["eval", "run", "--project", project, *form_args(EVAL, values)] + (["--new"] if new else [])


CHART_FILLS = ("█", "▒", "·", "▞")
"""one fill per bar series: told apart without colour"""


class EvaluateScreen(RunScreen):
    COMMAND = "eval run"
    NOUN = "an evaluation"
    LABEL = "evaluation"
    LEAVE_FOCUS = "#evals"
    CANCEL_NOTE = "cancelling: scored items are kept; ctrl+r resumes"
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("ctrl+h", "hold_out", "Hold out seeds", priority=True),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        yield StageForm(EVAL, id="eval-form")
        yield RunProgress(id="progress")
        with Horizontal(id="eval-live"):
            yield PlainTable(id="evals", cursor_type="row")
            with Vertical(id="eval-right"):
                yield PlotextPlot(id="eval-chart")
                yield Static("", id="chart-key", classes="hint")
                yield PlainTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="eval-summary", classes="hint")
        yield Footer()

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
        if ev.status != JobStatus.DONE:
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
        if len(ev.results.get("models", [])) >= 2:
            parts.append(headline_text(ev.results))
        summary.update(Text("  ·  ".join(parts)))

    def draw(self, names: list[str], per_model: dict[str, list[float]], chance: list[float]) -> None:
        chart = self.query_one(PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("main score per set (calibrated macro-F1 / ROUGE-L)")
        key = self.query_one("#chart-key", Static)
        if names:
            # sets are numbered on the axis (names would overlap) and each series has its own fill, so
            # the bars read the same without colour
            labels = [*per_model.keys(), "no-reading baseline"]
            series = [*per_model.values(), chance]
            fills = [CHART_FILLS[i % len(CHART_FILLS)] for i in range(len(series))]
            numbers = [str(i) for i in range(1, len(names) + 1)]
            plt.multiple_bar(numbers, series, labels=labels, marker=fills)  # type: ignore[call-arg, arg-type]
            plt.ylim(0, 1)
            sets = "   ".join(f"{i} {name}" for i, name in enumerate(names, 1))
            bars = "   ".join(f"{fill * 2} {label}" for fill, label in zip(fills, labels))
            key.update(Text(f"sets: {sets}\nbars: {bars}"))
        else:
            key.update("")
        chart.refresh()

    def action_hold_out(self) -> None:
        if not self.running:
            self.launch(["seeds", "hold-out", "--project", self.project_name, "--fraction", "0.2"], "holding out")

    def finished_note(self, args: list[str], summary: dict[str, Any]) -> str:
        if args[0] == "seeds":
            return f"held out {summary.get('held_out')} of {summary.get('seeds')} seeds for evaluation"
        return (
            f"evaluation {summary.get('eval_id')}: domain Δ {summary.get('domain_mean_difference', '-')}, "
            f"off-domain Δ {summary.get('off_domain_mean_difference', '-')}"
        )

    def after_run(self) -> None:
        self.refresh_evals(show_newest=True)


def _delta(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, int | float) else "-"
