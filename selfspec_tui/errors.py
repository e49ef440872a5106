"""What the TUI shows when the store or an input refuses an action: a notification, never a crash."""

from __future__ import annotations

import sqlite3

from engine.errors import UserError
from engine.store.db import explain

HANDLED = (UserError, sqlite3.Error, OSError, RecursionError)


def user_message(exc: BaseException, what: str = "") -> str | None:
    """The message for an error a person can act on; None for a bug."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, UserError):
        return prefix + str(exc)
    if isinstance(exc, sqlite3.Error):
        return prefix + str(explain(exc))
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{prefix}file system error{where}: {exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return prefix + "the input is nested too deeply to read"
    return None
