"""Generate: the config form, start/resume/cancel, live counters, drop reasons and newest items."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, RichLog, Static, Switch

from engine.store import generation, projects
from selfspec_tui.engine_client import EngineRun
from selfspec_tui.widgets.run_progress import RunProgress

# (input id, CLI flag, label, config path in a stored generation)
FIELDS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("target", "--target", "target examples", ()),
    ("seed", "--seed", "seed (blank: random)", ("seed",)),
    ("k_seeds", "--k", "demos per brainstorm", ("k_seeds",)),
    ("tasks_per_prompt", "--tasks-per-prompt", "tasks per prompt", ("tasks_per_prompt",)),
    ("temperature", "--temperature", "temperature", ("brainstorm", "temperature")),
    ("top_p", "--top-p", "top-p", ("brainstorm", "top_p")),
    ("max_tokens", "--max-tokens", "brainstorm max tokens", ("brainstorm", "max_tokens")),
    ("response_max_tokens", "--response-max-tokens", "answer max tokens", ("respond", "max_tokens")),
    ("passages", "--passages", "passages per answer", ("passages",)),
    ("demos", "--demos", "demos per answer", ("demos",)),
    ("rouge_threshold", "--rouge-threshold", "ROUGE-L threshold", ("filters", "rouge_threshold")),
    ("batch_size", "--batch-size", "batch size (HF)", ("batch_size",)),
]
DEFAULTS = {
    "target": "5000",
    "seed": "",
    "k_seeds": "3",
    "tasks_per_prompt": "4",
    "temperature": "1.0",
    "top_p": "0.98",
    "max_tokens": "768",
    "response_max_tokens": "512",
    "passages": "5",
    "demos": "5",
    "rouge_threshold": "0.7",
    "batch_size": "8",
}


def engine_args(project: str, values: dict[str, str], retrieval: bool, new: bool) -> list[str]:
    """The `generate` command line for the form's values (blank fields are left to the engine)."""
    args = ["generate", "--project", project]
    for key, flag, _, _ in FIELDS:
        value = values.get(key, "").strip()
        if value:
            args += [flag, value]
    if not retrieval:
        args.append("--no-retrieval")
    if new:
        args.append("--new")
    return args


def values_from_config(config: dict[str, Any], target: int) -> dict[str, str]:
    out = {"target": str(target)}
    body = config.get("generate", {})
    for key, _, _, path in FIELDS:
        node: Any = body
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if path and node is not None:
            out[key] = str(node)
    return out


class GenerateScreen(Screen[None]):
    BINDINGS = [
        # priority: these must work while a form field has focus (Input binds ctrl+x to cut)
        Binding("ctrl+r", "start(False)", "Run / resume", priority=True),
        Binding("ctrl+n", "start(True)", "New generation", priority=True),
        Binding("ctrl+x", "cancel", "Cancel", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._run: EngineRun | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title")
        yield Static("", id="latest", classes="hint")
        with Grid(id="gen-form"):
            for key, _, label, _ in FIELDS:
                with Vertical(classes="field"):
                    yield Label(label)
                    yield Input(DEFAULTS[key], id=key)
            with Vertical(classes="field"):
                yield Label("retrieval")
                yield Switch(True, id="retrieval")
        yield RunProgress(id="progress")
        with Horizontal(id="gen-live"):
            with Vertical(id="gen-left"):
                yield Static("", id="counters")
                yield DataTable(id="reasons", cursor_type="none")
            yield RichLog(id="items", max_lines=300, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reasons", DataTable).add_columns("dropped because", "count")
        self.refresh_latest(prefill=True)

    def refresh_latest(self, prefill: bool = False) -> None:
        db = self.app.db  # type: ignore[attr-defined]
        project = projects.get(db, self.project_name)
        self.query_one("#title", Static).update(
            f"Generate for {project.name}  ·  domain: {project.domain}  ·  base model: {project.base_model}"
        )
        last = generation.latest(db, project)
        if last is None:
            text = "no generation yet: set the options and press ctrl+r"
        else:
            counts = generation.status_counts(db, last.id)
            made = generation.count_examples(db, last.id)
            text = (
                f"generation {last.id}: {last.phase}, {counts['kept']}/{last.target} tasks kept, "
                f"{made} answered, {counts['dropped']} dropped"
            )
            if last.phase != "done":
                text += "  ·  ctrl+r resumes it, ctrl+n starts a new one"
                if prefill:
                    self._prefill(values_from_config(last.config, last.target), last.config)
            self._show_reasons(generation.drop_counts(db, last.id))
        self.query_one("#latest", Static).update(text)

    def _prefill(self, values: dict[str, str], config: dict[str, Any]) -> None:
        for key, value in values.items():
            self.query_one(f"#{key}", Input).value = value
        self.query_one("#retrieval", Switch).value = bool(config.get("generate", {}).get("retrieval", True))

    def _show_reasons(self, reasons: dict[str, int]) -> None:
        table = self.query_one("#reasons", DataTable)
        table.clear()
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            table.add_row(reason.replace("_", " "), str(n))

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#items", RichLog).focus()
        elif self._run is not None:
            self.notify("a generation is running: ctrl+x cancels it first", severity="warning")
        else:
            self.app.pop_screen()

    def action_cancel(self) -> None:
        if self._run:
            self._run.cancel()
            self.notify("cancelling: the work in flight is dropped, everything finished is kept")

    def action_start(self, new: bool) -> None:
        if self._run is not None:
            self.notify("a generation is already running", severity="warning")
            return
        values = {key: self.query_one(f"#{key}", Input).value for key, _, _, _ in FIELDS}
        retrieval = self.query_one("#retrieval", Switch).value
        self.run_generation(engine_args(self.project_name, values, retrieval, new))

    def on_engine_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        self.query_one(RunProgress).show_event(event)
        if kind == "progress":
            c = event.get("counters") or {}
            if c:
                rate = event.get("tokens_per_s")
                self.query_one("#counters", Static).update(
                    f"prompts {c.get('prompts', 0)}   parsed {c.get('parsed', 0)}   kept {c.get('kept', 0)}   "
                    f"dropped {c.get('dropped', 0)}   answered {c.get('responses', 0)}"
                    + (f"   {rate:.0f} tok/s" if rate else "")
                )
            if event.get("dropped") is not None:
                self._show_reasons(event["dropped"])
        elif kind == "item":
            log = self.query_one("#items", RichLog)
            if event.get("kind") == "task" and event.get("status") == "kept":
                log.write(f"+ task  {event.get('instruction', '')}")
            elif event.get("kind") == "task":
                log.write(f"- {event.get('reason', '')}: {str(event.get('instruction', ''))[:100]}")
            elif event.get("kind") == "example":
                answer = " ".join(str(event.get("output", "")).split())[:160]
                log.write(f"= answer  {str(event.get('instruction', ''))[:80]}\n    {answer}")
        elif kind == "log":
            self.query_one("#items", RichLog).write(f"· {event.get('message', '')}")

    @work(exclusive=True, group="generate")
    async def run_generation(self, args: list[str]) -> None:
        progress = self.query_one(RunProgress)
        progress.begin("generating")
        self.query_one("#items", RichLog).clear()
        self.query_one("#counters", Static).update("starting ...")  # not the last run's figures
        self._run = EngineRun(*args)
        try:
            outcome = await self._run.run(self.on_engine_event)
        finally:
            self._run = None
        progress.end(outcome.message)
        if outcome.code == 0 and outcome.last and outcome.last.get("event") == "finished":
            s = outcome.last.get("summary", {})
            self.notify(
                f"generation {s.get('generation')}: {s.get('examples', 0)} examples "
                f"({s.get('dropped_tasks', 0)} tasks dropped)",
                timeout=10,
            )
        elif outcome.last and outcome.last.get("event") == "interrupted":
            self.notify("generation cancelled; ctrl+r resumes it", severity="warning", timeout=10)
        else:
            self.notify(outcome.message, severity="error", timeout=20)
        self.refresh_latest()
