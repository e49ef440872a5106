"""Train: options, run / resume / cancel, a live loss chart, and the project's adapters."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static, Switch
from textual_plotext import PlotextPlot

from engine.store import adapters, projects
from selfspec_tui.engine_client import EngineRun
from selfspec_tui.widgets.run_progress import RunProgress

# (input id, CLI flag, label, default)
FIELDS: list[tuple[str, str, str, str]] = [
    ("name", "--name", "adapter name (blank: expert-N)", ""),
    ("epochs", "--epochs", "epochs", "3"),
    ("lr", "--lr", "learning rate", "3e-4"),
    ("rank", "--rank", "LoRA rank", "8"),
    ("alpha", "--alpha", "LoRA alpha", "16"),
    ("batch_size", "--batch-size", "batch size", "32"),
    ("micro_batch", "--micro-batch", "micro-batch", "4"),
    ("max_length", "--max-length", "max length (tokens)", "1024"),
    ("checkpoint_every", "--checkpoint-every", "checkpoint every (steps)", "50"),
    ("max_steps", "--max-steps", "max steps (0: all)", "0"),
]
CONFIG_KEYS = {
    "epochs": "epochs",
    "lr": "learning_rate",
    "rank": "rank",
    "alpha": "alpha",
    "batch_size": "batch_size",
    "micro_batch": "micro_batch",
    "max_length": "max_length",
    "checkpoint_every": "checkpoint_every",
    "max_steps": "max_steps",
}


def engine_args(project: str, values: dict[str, str], prompt_format: str, pending: bool, new: bool) -> list[str]:
    """The `train` command line for the form (blank fields are left to the engine's defaults)."""
    args = ["train", "--project", project, "--prompt-format", prompt_format]
    for key, flag, _, _ in FIELDS:
        value = values.get(key, "").strip()
        if value:
            args += [flag, value]
    if pending:
        args.append("--include-pending")
    if new:
        args.append("--new")
    return args


class TrainScreen(Screen[None]):
    BINDINGS = [
        Binding("ctrl+r", "start(False)", "Train / resume", priority=True),
        Binding("ctrl+n", "start(True)", "New adapter", priority=True),
        Binding("ctrl+x", "cancel", "Cancel", priority=True),
        Binding("ctrl+u", "use", "Make current", priority=True),
        Binding("ctrl+e", "export", "Export GGUF", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._run: EngineRun | None = None
        self.points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title")
        with Grid(id="train-form"):
            for key, _, label, default in FIELDS:
                with Vertical(classes="field"):
                    yield Label(label)
                    yield Input(default, id=key)
            with Vertical(classes="field"):
                yield Label("prompt format")
                yield Select(
                    [("alpaca", "alpaca"), ("chat template", "chat")],
                    value="alpaca",
                    allow_blank=False,
                    id="prompt_format",
                )
            with Vertical(classes="field"):
                yield Label("include pending")
                yield Switch(False, id="pending")
        yield RunProgress(id="progress")
        with Horizontal(id="train-live"):
            yield PlotextPlot(id="loss-chart")
            with Vertical(id="train-side"):
                yield Static("", id="train-numbers")
                yield DataTable(id="adapters", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#adapters", DataTable).add_columns("adapter", "status", "examples", "steps", "loss", "val")
        self.refresh_adapters(show_newest=True)

    @property
    def db(self) -> Any:
        return self.app.db  # type: ignore[attr-defined]

    def refresh_adapters(self, show_newest: bool = False) -> None:
        project = projects.get(self.db, self.project_name)
        approved = projects.summary(self.db, project)["approved"]
        self.query_one("#title", Static).update(
            f"Train {project.name}  ·  base model: {project.base_model}  ·  training set: {approved} approved examples"
        )
        table = self.query_one("#adapters", DataTable)
        row = table.cursor_row
        table.clear()
        found = adapters.list_for(self.db, project)
        for a in found:
            m = a.metrics
            table.add_row(
                ("* " if a.is_current else "") + a.name,
                a.status,
                str(a.examples),
                str(m.get("steps", "")),
                _fmt(m.get("final_loss")),
                _fmt(m.get("val_loss")),
                key=str(a.id),
            )
        if found:
            table.move_cursor(row=min(row, len(found) - 1))
        if show_newest and found:
            self.show_curve(found[-1].id)

    def show_curve(self, adapter_id: int) -> None:
        steps = adapters.steps(self.db, adapter_id)
        self.points = [(s.step, s.loss) for s in steps]
        self.val_points = [(s.step, s.val_loss) for s in steps if s.val_loss is not None]
        self.draw(adapters.get(self.db, adapter_id).name)

    def draw(self, title: str) -> None:
        chart = self.query_one(PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"loss · {title}")
        plt.xlabel("step")
        if self.points:
            plt.plot([p[0] for p in self.points], [p[1] for p in self.points], label="train", marker="braille")
        if self.val_points:
            plt.plot([p[0] for p in self.val_points], [p[1] for p in self.val_points], label="validation", marker="dot")
        chart.refresh()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self._run is None and event.row_key.value:
            self.show_curve(int(event.row_key.value))

    def on_engine_event(self, event: dict[str, Any]) -> None:
        self.query_one(RunProgress).show_event(event)
        if event.get("event") == "progress" and event.get("step_loss"):
            point = event["step_loss"]
            self.points.append((int(point["step"]), float(point["loss"])))
            if point.get("val_loss") is not None:
                self.val_points.append((int(point["step"]), float(point["val_loss"])))
            self.draw("training")
            rate = event.get("tokens_per_s")
            self.query_one("#train-numbers", Static).update(
                f"step {event.get('done')}/{event.get('total')}   epoch {float(event.get('epoch', 0)):.2f}\n"
                f"loss {event.get('loss', 0):.4f}   val {_fmt(event.get('val_loss'))}\n"
                f"lr {event.get('lr', 0):.2e}   {rate or 0:.0f} tok/s   ETA {_eta(event.get('eta_s'))}"
            )
        elif event.get("event") == "log":
            self.query_one("#train-numbers", Static).update(str(event.get("message", ""))[:300])

    def action_start(self, new: bool) -> None:
        if self._run is not None:
            self.notify("a run is already in progress", severity="warning")
            return
        values = {key: self.query_one(f"#{key}", Input).value for key, _, _, _ in FIELDS}
        fmt = str(self.query_one("#prompt_format", Select).value)
        pending = self.query_one("#pending", Switch).value
        project = projects.get(self.db, self.project_name)
        unfinished = [a for a in adapters.list_for(self.db, project) if a.status != "done"]
        if unfinished and not new:  # resume with the stored settings; only run control may change
            cfg = unfinished[-1].config.get("train", {})
            values = {k: v for k, v in values.items() if k in ("checkpoint_every", "max_steps")}
            fmt, pending = cfg.get("prompt_format", "alpaca"), False
        self.points, self.val_points = [], []
        if unfinished and not new:
            self.show_curve(unfinished[-1].id)
        self.run_stage(engine_args(self.project_name, values, fmt, pending, new), "training")

    def action_cancel(self) -> None:
        if self._run:
            self._run.cancel()
            self.notify("cancelling: finished work is kept and the run resumes where it stopped")

    def action_use(self) -> None:
        a = self.selected_adapter()
        if a is None:
            return
        if a.status != "done":
            self.notify(f"{a.name} is {a.status}: finish training it first", severity="warning")
            return
        adapters.set_current(self.db, projects.get(self.db, self.project_name), a.id)
        self.notify(f"{a.name} is now the current expert")
        self.refresh_adapters()

    def selected_adapter(self) -> adapters.Adapter | None:
        table = self.query_one("#adapters", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return adapters.get(self.db, int(str(key)))

    def action_export(self) -> None:
        """Merge the highlighted adapter, convert it to GGUF, quantize and check parity (resumable)."""
        if self._run is not None:
            self.notify("a run is in progress: ctrl+x cancels it first", severity="warning")
            return
        a = self.selected_adapter()
        if a is None or a.status != "done":
            self.notify("highlight a finished adapter to export", severity="warning")
            return
        self.run_stage(["export", "--project", self.project_name, "--adapter", a.name], f"exporting {a.name}")

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#adapters", DataTable).focus()
        elif self._run is not None:
            self.notify("a run is in progress: ctrl+x cancels it first (its work is kept)", severity="warning")
        else:
            self.app.pop_screen()

    @work(exclusive=True, group="train")
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
        if outcome.code == 0 and last.get("event") == "finished" and args[0] == "export":
            parity = "; ".join(f"{k[7:]}: {v}" for k, v in s.items() if k.startswith("parity_"))
            self.notify(f"exported {s.get('adapter')} to {s.get('folder')}. Parity {parity}", timeout=20)
            self.query_one("#train-numbers", Static).update(f"exported {s.get('adapter')}\n{parity}")
        elif outcome.code == 0 and last.get("event") == "finished":
            self.notify(
                f"adapter {s.get('adapter')}: {s.get('steps')} steps, loss {_fmt(s.get('final_loss'))}, "
                f"val {_fmt(s.get('val_loss'))}",
                timeout=10,
            )
        elif last.get("event") == "interrupted":
            again = "ctrl+e" if args[0] == "export" else "ctrl+r"
            self.notify(f"{label} cancelled; {again} resumes it", severity="warning", timeout=10)
        else:
            self.notify(outcome.message, severity="error", timeout=20)
        self.refresh_adapters()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s" if seconds >= 60 else f"{int(seconds)}s"
