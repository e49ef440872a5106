"""The `?` overlay: every key the screen underneath answers to, and what it does."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from selfspec_tui.widgets.plain_table import PlainTable

NAMES = {"question_mark": "?", "escape": "esc", "enter": "enter", "space": "space", "slash": "/"}


def key_label(key: str) -> str:
    return NAMES.get(key, key)


def screen_keys(screen: Screen[Any]) -> list[tuple[str, str]]:
    """(keys, what they do) for every binding of the screen and the app, then those of the focused
    widget (a table's cursor keys, ...); keys of one action together."""
    from textual.app import App

    own: dict[str, tuple[list[str], str]] = {}
    widget: dict[str, tuple[list[str], str]] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        what = b.description or b.action.replace("_", " ")
        group = own if isinstance(active.node, Screen | App) else widget
        keys, _ = group.setdefault(b.action, ([], what))
        if key_label(key) not in keys:
            keys.append(key_label(key))
    rows = [(", ".join(keys), what) for keys, what in own.values()]
    return rows + [(", ".join(keys), f"{what} (in the focused box)") for keys, what in widget.values()]


def screen_about(screen: Screen[Any]) -> str:
    """The first paragraph of the screen's module docstring: what the screen is for."""
    import sys

    doc = (sys.modules[type(screen).__module__].__doc__ or "").strip()
    return " ".join(doc.split("\n\n", 1)[0].split())


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]
        Binding("escape,question_mark,f1,q", "dismiss", "Close"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.rows = screen_keys(under)
        self.about = screen_about(under)
        self.title_text = f"Keys · {type(under).__name__.removesuffix('Screen')}"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="help"):
            yield Static(self.title_text, classes="title")
            if self.about:
                yield Static(self.about, classes="hint")
            yield PlainTable(id="help-keys", cursor_type="row", show_cursor=False)
            yield Static("esc or ? closes · ctrl+p searches every action", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_columns("key", "does")
        for keys, what in self.rows:
            table.add_row(keys, what)
