"""Small dialogs: confirm, new project, path entry, seed editor. Each returns a value on dismiss."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DirectoryTree, Input, Label, Select, Switch, TextArea

from engine.errors import UserError, ValidationError
from engine.paths import validate_project_name
from engine.schema import check_seed


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


def confirm_then(
    screen: Screen[Any], question: str, act: Callable[[], object], done: str, after: Callable[[], None]
) -> None:
    """Ask `question`; on yes run `act` (a store change), then notify `done` and call `after`; a
    refusal or store error becomes an error notification and changes nothing."""
    from selfspec_tui.errors import HANDLED, user_message

    def answered(yes: bool | None) -> None:
        if not yes:
            return
        try:
            act()
        except HANDLED as exc:
            screen.notify(user_message(exc) or str(exc), severity="error")
            return
        screen.notify(done)
        after()

    screen.app.push_screen(ConfirmModal(question), answered)


class NewProjectModal(ModalScreen[dict[str, str] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Create")]

    def __init__(self, models: list[str]) -> None:
        super().__init__()
        self.models = models

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New project", classes="title")
            yield Input(placeholder="name (lowercase, digits, - or _)", id="name")
            yield Input(placeholder="domain, e.g. biomedicine", id="domain")
            yield Select([(m, m) for m in self.models], value=self.models[0], allow_blank=False, id="model")
            yield Label("", id="error", classes="error", markup=False)
            yield Label("enter: next field   ctrl+s: create   esc: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "name":
            self.query_one("#domain", Input).focus()
        else:
            self.action_submit()

    def action_submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        domain = self.query_one("#domain", Input).value.strip()
        try:
            validate_project_name(name)
            if not domain:
                raise UserError("a domain is needed, e.g. 'biomedicine'")
        except UserError as exc:
            self.query_one("#error", Label).update(Text(str(exc)))
            return
        model = str(self.query_one("#model", Select).value)
        self.dismiss({"name": name, "domain": domain, "base_model": model})

    def action_cancel(self) -> None:
        self.dismiss(None)


class PathModal(ModalScreen[str | None]):
    """Asks for a file or folder path: typed, or picked in the tree below (enter on a file or
    folder puts it in the box; enter in the box imports)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "path to a file or folder", start: Path | None = None) -> None:
        super().__init__()
        self.title_text, self.placeholder = title, placeholder
        self.start = start or Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="path-dialog"):
            yield Label(self.title_text, classes="title")
            yield Input(placeholder=self.placeholder, id="path")
            yield DirectoryTree(str(self.start), id="picker")
            yield Label("type a path, or tab to the tree and enter on a file or folder · enter: import · esc: cancel",
                        classes="hint")  # fmt: skip

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self._pick(event.path)

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self._pick(event.path)

    def _pick(self, path: Path) -> None:
        box = self.query_one("#path", Input)
        box.value = str(path)
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SeedModal(ModalScreen[dict[str, Any] | None]):
    """Add or edit one seed; validated with the same rules as every importer."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, title: str, values: dict[str, str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.values = values or {}

    def compose(self) -> ComposeResult:
        v = self.values
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="title")
            yield Label("instruction")
            yield TextArea(v.get("instruction", ""), id="instruction", classes="short")
            yield Label("input (may be empty)")
            yield TextArea(v.get("input", ""), id="input", classes="short")
            yield Label("output")
            yield TextArea(v.get("output", ""), id="output", classes="short")
            yield Label("task type")
            yield Input(v.get("task_type", "general"), id="task_type")
            yield Label("", id="error", classes="error", markup=False)
            yield Label("tab: next field   ctrl+s: save   esc: cancel", classes="hint")

    def action_save(self) -> None:
        fields = {k: self.query_one(f"#{k}", TextArea).text for k in ("instruction", "input", "output")}
        fields["task_type"] = self.query_one("#task_type", Input).value.strip()
        _, problems = check_seed(fields, "seed", None)
        if problems:
            self.query_one("#error", Label).update(Text(str(ValidationError(problems))))
            return
        self.dismiss(fields)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskModal(ModalScreen[str | None]):
    """One line of text; enter returns it (possibly empty), escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.value = title, placeholder, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="title")
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Label("enter: ok   esc: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportModal(ModalScreen[dict[str, Any] | None]):
    """Where and how to write the training set."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Export")]
    FORMATS = ("alpaca", "sharegpt", "openai", "parquet")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Export the training set (accepted + edited examples)", classes="title")
            yield Select([(f, f) for f in self.FORMATS], value="alpaca", allow_blank=False, id="format")
            yield Input(placeholder="file (blank: the project's exports folder)", id="out")
            yield Input(placeholder="system message for sharegpt / openai (optional)", id="system")
            with Horizontal(classes="buttons"):
                yield Switch(False, id="pending")
                yield Label(" also include pending (unreviewed) examples")
            yield DirectoryTree(str(Path.cwd()), id="picker")
            yield Label("ctrl+s / enter: export · a folder picked in the tree gets a file name · esc: cancel",
                        classes="hint")  # fmt: skip

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        fmt = str(self.query_one("#format", Select).value)
        suffix = ".parquet" if fmt == "parquet" else ".jsonl"
        self.query_one("#out", Input).value = str(event.path / f"training-{fmt}{suffix}")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#out", Input).value = str(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        self.dismiss(
            {
                "format": str(self.query_one("#format", Select).value),
                "out": self.query_one("#out", Input).value.strip(),
                "system": self.query_one("#system", Input).value.strip(),
                "include_pending": self.query_one("#pending", Switch).value,
            }
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
