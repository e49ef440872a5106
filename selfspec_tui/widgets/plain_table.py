"""A DataTable that shows its text cells as written.

Textual's DataTable reads a `str` cell as console markup, so a seed that says "[/b]" or a file called
"notes[1].txt" raised a MarkupError and closed the app. Every table in the app is this one: a `str`
cell becomes a plain `Text`; cells that are already renderables are left as they are."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class PlainTable(DataTable[Any]):
    def add_row(self, *cells: Any, **kwargs: Any) -> RowKey:
        return super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)
