"""The base of every screen: typed access to the UI thread's store connection, and the help key first
in the footer."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlite_utils import Database
from textual.binding import Binding
from textual.screen import Screen


class AppScreen(Screen[Any]):
    # first in every footer, so "? Keys" is never the one cut off at 80 columns; the app's own
    # binding (hidden from footers) serves screens that are not AppScreens
    BINDINGS: ClassVar[list[Binding]] = [Binding("question_mark,f1", "app.help", "Keys")]  # type: ignore[assignment]

    @property
    def db(self) -> Database:
        """The store connection the app opened for the UI thread (selfspec_tui.app.SelfSpecApp.db)."""
        db: Database = getattr(self.app, "db")  # noqa: B009 (screens are tested inside the app only)
        return db
