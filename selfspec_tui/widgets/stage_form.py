"""A stage's settings form, built from its command's knobs (labels, defaults and choices included)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Select, Switch

from engine.spec.stage import Command
from selfspec_tui.forms import form_knobs

FIELD_WIDTH = 26
"""columns a field gets: the form has as many columns as fit (at 80 columns 3, at 200 columns 7)"""


class StageForm(Grid):
    """Fields in as many columns as the width allows, one line each (compact inputs); a form taller
    than its share of the screen scrolls (focus moving to a field brings it into view)."""

    def __init__(self, command: Command, skip: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.knobs = form_knobs(command, skip)

    def compose(self) -> ComposeResult:
        for k in self.knobs:
            with Vertical(classes="field"):
                yield Label(k.label)
                if k.kind is bool:
                    yield Switch(bool(k.default), id=k.form_id)
                elif k.choices:
                    choices = [(c, c) for c in k.choices]
                    yield Select(choices, value=str(k.default), allow_blank=False, id=k.form_id, compact=True)
                else:
                    yield Input(k.default_text(), id=k.form_id, compact=True)

    def on_resize(self) -> None:
        columns = max(2, min(len(self.knobs), self.size.width // FIELD_WIDTH))
        if self.styles.grid_size_columns != columns:
            self.styles.grid_size_columns = columns

    def values(self) -> dict[str, Any]:
        """Every field's value by knob name: text for inputs and choices, bool for switches."""
        out: dict[str, Any] = {}
        for k in self.knobs:
            widget = self.query_one(f"#{k.form_id}")
            if isinstance(widget, Switch):
                out[k.name] = widget.value
            elif isinstance(widget, Select):
                out[k.name] = str(widget.value)
            elif isinstance(widget, Input):
                out[k.name] = widget.value
        return out

    def fill(self, values: dict[str, Any]) -> None:
        for k in self.knobs:
            if k.name not in values:
                continue
            widget = self.query_one(f"#{k.form_id}")
            if isinstance(widget, Switch):
                widget.value = bool(values[k.name])
            elif isinstance(widget, Select):
                widget.value = str(values[k.name])
            elif isinstance(widget, Input):
                widget.value = str(values[k.name])
