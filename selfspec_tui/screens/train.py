"""Train: options, run / resume / cancel, a live loss chart, and the project's adapters."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual_plotext import PlotextPlot

from engine.spec import events as ev
from engine.spec.commands import stage
from engine.spec.kinds import JobStatus
from engine.store import adapters, projects
from selfspec_tui.forms import form_args
from selfspec_tui.screens.run_screen import RunScreen
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress
from selfspec_tui.widgets.stage_form import StageForm

TRAIN = stage("train")
_SEPARATE = ("prompt_format", "include_pending")  # passed on their own, first and last


def engine_args(project: str, values: dict[str, Any], prompt_format: str, pending: bool, new: bool) -> list[str]:
    """The `train` command line for the form (blank fields are left to the engine's defaults)."""
    args = ["train", "--project", project, "--prompt-format", prompt_format, *form_args(TRAIN, values, _SEPARATE)]
    return args + (["--include-pending"] if pending else []) + (["--new"] if new else [])


class TrainScreen(RunScreen):
    COMMAND = "train"
    NOUN = "a run"
    LABEL = "training"
    LEAVE_FOCUS = "#adapters"
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("ctrl+u", "use", "Make current", priority=True),
        Binding("ctrl+e", "export", "Export GGUF", priority=True),
    ]

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []
        self._listed_run = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        yield StageForm(TRAIN, id="train-form")
        yield RunProgress(id="progress")
        with Horizontal(id="train-live"):
            yield PlotextPlot(id="loss-chart")
            with Vertical(id="train-side"):
                yield Static("", id="train-numbers", markup=False)
                yield PlainTable(id="adapters", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#adapters", DataTable).add_columns("adapter", "status", "examples", "steps", "loss", "val")
        self.refresh_adapters(show_newest=True)

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
        if not self.running and event.row_key.value:
            self.show_curve(int(event.row_key.value))

    def on_stage_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Progress) and not self._listed_run:
            self._listed_run = True  # the run's adapter row exists now: show it (status running)
            self.refresh_adapters()
        if isinstance(event, ev.Progress) and event.extra.get("step_loss"):
            x, point = event.extra, event.extra["step_loss"]
            self.points.append((int(point["step"]), float(point["loss"])))
            if point.get("val_loss") is not None:
                self.val_points.append((int(point["step"]), float(point["val_loss"])))
            self.draw("training")
            rate = x.get("tokens_per_s")
            done_epochs = float(x.get("epoch", 0))
            epochs = int(x.get("epochs") or 0)
            current = min(int(done_epochs) + 1, epochs) if epochs else int(done_epochs) + 1
            epoch = f"epoch {current}/{epochs} ({done_epochs:.2f} done)" if epochs else f"epoch {current}"
            self.query_one("#train-numbers", Static).update(
                f"step {event.done}/{event.total}   {epoch}\n"
                f"loss {x.get('loss', 0):.4f}   val {_fmt(x.get('val_loss'))}\n"
                f"lr {x.get('lr', 0):.2e}   {rate or 0:.0f} tok/s   ETA {_eta(event.eta_s)}"
            )
        elif isinstance(event, ev.Log):
            self.query_one("#train-numbers", Static).update(Text(event.message[:300]))

    def action_start(self, new: bool) -> None:
        """ctrl+n with the name field blank asks for the new adapter's name first."""
        if new and not self.running and not str(self.form().values().get("name") or "").strip():
            from selfspec_tui.screens.modals import AskModal

            def named(name: str | None) -> None:
                if name is None:
                    return
                if name:
                    self.query_one("#name", Input).value = name
                super(TrainScreen, self).action_start(True)

            taken = {a.name for a in adapters.list_for(self.db, projects.get(self.db, self.project_name))}
            suggested = next(f"expert-{i}" for i in range(1, len(taken) + 2) if f"expert-{i}" not in taken)
            ask = AskModal("Name of the new adapter", "letters, digits, - _ .", suggested)
            self.app.push_screen(ask, named)
            return
        super().action_start(new)

    def command_args(self, new: bool) -> list[str]:
        values = self.form().values()
        fmt, pending = str(values.get("prompt_format", "alpaca")), bool(values.get("include_pending"))
        project = projects.get(self.db, self.project_name)
        unfinished = [a for a in adapters.list_for(self.db, project) if a.status != JobStatus.DONE]
        self.points, self.val_points = [], []
        if unfinished and not new:  # resume with the stored settings; only run control may change
            control = {k.name for k in TRAIN.knobs if k.run_control}
            values = {k: v for k, v in values.items() if k in control}
            fmt, pending = unfinished[-1].config.get("train", {}).get("prompt_format", "alpaca"), False
            self.show_curve(unfinished[-1].id)
        return engine_args(self.project_name, values, fmt, pending, new)

    def action_use(self) -> None:
        a = self.selected_adapter()
        if a is None:
            return
        if a.status != JobStatus.DONE:
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
        if self.running:
            self.notify("a run is in progress: ctrl+x cancels it first", severity="warning")
            return
        a = self.selected_adapter()
        if a is None or a.status != JobStatus.DONE:
            self.notify("highlight a finished adapter to export", severity="warning")
            return
        self.launch(["export", "--project", self.project_name, "--adapter", a.name], f"exporting {a.name}")

    def resume_key(self, args: list[str]) -> str:
        return "ctrl+e" if args[0] == "export" else "ctrl+r"

    def finished_note(self, args: list[str], summary: dict[str, Any]) -> str:
        if args[0] == "export":
            parity = {k[7:]: str(v) for k, v in summary.items() if k.startswith("parity_")}
            lines = "\n".join(f"{name}: {text}" for name, text in parity.items())
            self.query_one("#train-numbers", Static).update(
                Text(
                    f"exported {summary.get('adapter')} to\n{summary.get('folder')}\nparity (vs the merged model):\n"
                    f"{lines}\nOllama: {summary.get('ollama', '')}"
                )
            )
            top1 = ", ".join(f"{name} {text.split('top-1 ')[-1].split(' ')[0]}" for name, text in parity.items())
            return f"exported {summary.get('adapter')}: top-1 agreement {top1} (details beside the chart)"
        return (
            f"adapter {summary.get('adapter')}: {summary.get('steps')} steps, loss {_fmt(summary.get('final_loss'))}, "
            f"val {_fmt(summary.get('val_loss'))}"
        )

    def after_run(self) -> None:
        self._listed_run = False
        self.refresh_adapters()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s" if seconds >= 60 else f"{int(seconds)}s"
