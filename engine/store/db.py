"""Opening the one SQLite database: pragmas first, then pending migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError
from engine.store.migrations import migrations

BUSY_TIMEOUT_MS = 10_000


def open_store(path: Path | None = None) -> Database:
    """Open (creating if needed) the store with WAL, foreign keys and a busy timeout.

    One connection per thread or process; callers must not share it across threads.
    """
    try:
        path = path or paths.db_path()
    except OSError as exc:
        raise UserError(f"cannot create the home folder: {exc}") from exc
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db = Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot open the store at {path}: {exc} (is it a selfspec database?)") from exc
    return db


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def write_txn(db: Database) -> Iterator[Database]:
    """A transaction that takes the write lock up front (BEGIN IMMEDIATE).

    For read-then-write work that other processes may race: a deferred transaction that reads
    and then writes can fail with SQLITE_BUSY at once; an immediate one waits its turn.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.execute("COMMIT")
