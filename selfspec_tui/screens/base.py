"""The base of every screen: typed access to the UI thread's store connection."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database
from textual.screen import Screen


class AppScreen(Screen[Any]):
    @property
    def db(self) -> Database:
        """The store connection the app opened for the UI thread (selfspec_tui.app.SelfSpecApp.db)."""
        db: Database = getattr(self.app, "db")  # noqa: B009 (screens are tested inside the app only)
        return db
