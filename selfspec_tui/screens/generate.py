"""Generate: the config form, start/resume/cancel, live counters, drop reasons and newest items."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, RichLog, Static

from engine.spec import events as ev
from engine.spec.commands import stage
from engine.spec.generate import cost_text
from engine.spec.kinds import Phase
from engine.store import generation, projects
from selfspec_tui.forms import form_args, values_from
from selfspec_tui.screens.run_screen import RunScreen
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress
from selfspec_tui.widgets.stage_form import StageForm

GENERATE = stage("generate")


def engine_args(project: str, values: dict[str, Any], retrieval: bool, new: bool) -> list[str]:
    """The `generate` command line for the form's values (blank fields are left to the engine)."""
    args = ["generate", "--project", project, *form_args(GENERATE, {**values, "retrieval": retrieval})]
    return args + (["--new"] if new else [])


def values_from_config(config: dict[str, Any], target: int) -> dict[str, str]:
    """The form's values for a stored generation (what a resume will run with)."""
    return {**values_from(GENERATE.knobs, config.get("generate", {})), "target": str(target)}


class GenerateScreen(RunScreen):
    COMMAND = "generate"
    NOUN = "a generation"
    LABEL = "generation"
    LEAVE_FOCUS = "#items"
    CANCEL_NOTE = "cancelling: the work in flight is dropped, everything finished is kept"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        yield Static("", id="latest", classes="hint")
        yield StageForm(GENERATE, id="gen-form")
        yield Static("", id="cost", classes="hint")
        yield RunProgress(id="progress")
        with Horizontal(id="gen-live"):
            with Vertical(id="gen-left"):
                yield Static("", id="counters")
                yield PlainTable(id="reasons", cursor_type="none")
            yield RichLog(id="items", max_lines=300, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reasons", DataTable).add_columns("dropped because", "count")
        self.refresh_latest(prefill=True)

    def refresh_latest(self, prefill: bool = False) -> None:
        project = projects.get(self.db, self.project_name)
        self.query_one("#title", Static).update(
            f"Generate for {project.name}  ·  domain: {project.domain}  ·  base model: {project.base_model}"
        )
        last = generation.latest(self.db, project)
        if last is None:
            text = "no generation yet: set the options and press ctrl+r"
        else:
            counts = generation.status_counts(self.db, last.id)
            made = generation.count_examples(self.db, last.id)
            text = (
                f"generation {last.id}: {last.phase}, {counts['kept']}/{last.target} tasks kept, "
                f"{made} answered, {counts['dropped']} dropped"
            )
            if last.phase != Phase.DONE:
                text += "  ·  ctrl+r resumes it, ctrl+n starts a new one"
                if prefill:
                    retrieval = bool(last.config.get("generate", {}).get("retrieval", True))
                    self.form().fill({**values_from_config(last.config, last.target), "retrieval": retrieval})
            self._show_reasons(generation.drop_counts(self.db, last.id))
        self.query_one("#latest", Static).update(text)
        self.show_cost()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.endswith("target"):
            self.show_cost()

    def show_cost(self) -> None:
        """What the form's target costs at the rate this machine measured for the base model."""
        try:
            target = int(str(self.form().values().get("target", "")).strip())
        except ValueError:  # blank or not a number: the engine's default applies, say so (not a stale figure)
            self.query_one("#cost", Static).update("target: blank or not a whole number (a new generation takes 5000)")
            return
        project = projects.get(self.db, self.project_name)
        last = generation.latest(self.db, project)
        done = generation.count_examples(self.db, last.id) if last and last.phase != Phase.DONE else 0
        rate = generation.measured_rate(self.db, project.base_model)
        self.query_one("#cost", Static).update(f"target {target}: {cost_text(rate, target, done)}")

    def _show_reasons(self, reasons: dict[str, int]) -> None:
        table = self.query_one("#reasons", DataTable)
        table.clear()
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            table.add_row(reason.replace("_", " "), str(n))

    def command_args(self, new: bool) -> list[str]:
        values = self.form().values()
        return engine_args(self.project_name, values, bool(values.get("retrieval", True)), new)

    def launch(self, args: list[str], label: str) -> None:
        if not self.running:
            self.query_one("#items", RichLog).clear()
            self.query_one("#reasons", DataTable).clear()
            self.query_one("#counters", Static).update("starting ...")  # not the last run's figures
        super().launch(args, label)

    def on_stage_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            c = event.extra.get("counters") or {}
            if c:
                rate = event.extra.get("tokens_per_s")
                self.query_one("#counters", Static).update(
                    f"prompts {c.get('prompts', 0)}   parsed {c.get('parsed', 0)}   kept {c.get('kept', 0)}   "
                    f"dropped {c.get('dropped', 0)}   answered {c.get('responses', 0)}"
                    + (f"   {rate:.0f} tok/s" if rate else "")
                )
            if event.extra.get("dropped") is not None:
                self._show_reasons(event.extra["dropped"])
        elif isinstance(event, ev.Item):
            log = self.query_one("#items", RichLog)
            if event.kind == "task" and event.get("status") == "kept":
                log.write(f"+ task  {event.get('instruction')}")
            elif event.kind == "task":
                log.write(f"- {event.get('reason')}: {str(event.get('instruction'))[:100]}")
            else:
                answer = " ".join(str(event.get("output")).split())[:160]
                log.write(f"= answer  {str(event.get('instruction'))[:80]}\n    {answer}")
        elif isinstance(event, ev.Log):
            self.query_one("#items", RichLog).write(f"· {event.message}")

    def finished_note(self, args: list[str], summary: dict[str, Any]) -> str:
        return (
            f"generation {summary.get('generation')}: {summary.get('examples', 0)} examples "
            f"({summary.get('dropped_tasks', 0)} tasks dropped)"
        )

    def after_run(self) -> None:
        self.refresh_latest()
