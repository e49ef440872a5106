"""One-key actions fire only while a table has focus.

A screen's single-letter bindings (a accept, r reject, i import, ...) would otherwise fire
whenever the focused widget lets a key through: right after a search moved the focus, or
while a Select or Button has it. Screens that mix text entry with one-key actions inherit
`TableKeys` first, and their printable-key actions are refused (and hidden from the footer)
unless a table, or nothing at all, has the focus. Actions that also have a non-printable key
(escape, ctrl+...) are left alone.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable, ListView, OptionList

from selfspec_tui.widgets.virtual_table import VirtualTable

PRINTABLE_NAMES = {"slash", "question_mark", "plus", "minus", "full_stop", "comma", "space", "asterisk"}
TABLES = (DataTable, VirtualTable, OptionList, ListView)


def is_printable_key(key: str) -> bool:
    key = key.strip()
    return len(key) == 1 or key in PRINTABLE_NAMES


def letter_actions(bindings: list[Any]) -> frozenset[str]:
    """Names of actions every one of whose keys types a character."""
    keys_of: dict[str, list[str]] = {}
    for b in bindings:
        key, action = (b.key, b.action) if isinstance(b, Binding) else (b[0], b[1])
        name = action.split("(", 1)[0]
        keys_of.setdefault(name, []).extend(key.split(","))
    return frozenset(name for name, keys in keys_of.items() if all(is_printable_key(k) for k in keys))


class TableKeys:
    """Mixin for a Screen (listed before it): letter actions need a focused table."""

    _letter_actions: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._letter_actions = letter_actions(list(getattr(cls, "BINDINGS", [])))

    def typing_allowed_for(self, action: str) -> bool:
        if action not in self._letter_actions:
            return True
        focused = self.focused  # type: ignore[attr-defined]
        return focused is None or isinstance(focused, TABLES)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.typing_allowed_for(action):
            return False
        return super().check_action(action, parameters)  # type: ignore[misc]
