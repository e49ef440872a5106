"""Opening the one SQLite database: pragmas first, a corruption check, then pending migrations.

Failures of the store itself (locked by another writer, read-only, damaged) become a
`StoreError` whose message says what to do; `explain` turns any sqlite3 error into one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError
from engine.store.migrations2 import migrations

BUSY_TIMEOUT_MS = int(os.environ.get("SELFSPEC_BUSY_TIMEOUT_MS", "10000"))
QUICK_CHECK_MAX_BYTES = 64 * 2**20  # quick_check reads every page, ~3.4 ms per MiB (bench/store_open.py)


class StoreError(UserError):
    """The store cannot be used as it is (busy, read-only, damaged): the message says what to do."""


class StoreDamaged(StoreError):
    pass


def recovery_hint(path: Path | str) -> str:
    return (
        f"the store {path} is damaged; nothing was written. Run `selfspec-tui doctor` for a full check."
        f" To recover: copy it aside, then `sqlite3 {path} .recover | sqlite3 recovered.db` and put"
        " recovered.db in its place (or restore a backup)"
    )


def explain(exc: sqlite3.Error, path: Path | str | None = None) -> StoreError:
    """A user-facing StoreError for an sqlite3 error of the store itself."""
    where = path or _default_path()
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreError(
            f"the store {where} is busy: another selfspec-tui process has held its write lock for more than"
            f" {BUSY_TIMEOUT_MS // 1000} s. Wait for it to finish (see `selfspec-tui runs list`) and run"
            " the command again"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"the store {where} is read-only (or its folder is): selfspec-tui needs to write it."
            " Fix the permissions (chmod u+w on the file and its folder) or set SELFSPEC_HOME to a writable folder"
        )
    if "unable to open" in text:
        return StoreError(
            f"cannot open the store {where}: the folder is missing or not writable."
            " Check its permissions or set SELFSPEC_HOME to a writable folder"
        )
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return StoreDamaged(recovery_hint(where))
    if "disk is full" in text or "disk i/o" in text:
        return StoreError(f"the store {where} could not be written: {exc}. Free disk space and run again")
    return StoreError(f"the store {where} failed: {exc}")


def _default_path() -> str:
    try:
        return str(paths.db_path())
    except OSError:
        return "selfspec.db"


def open_store(path: Path | None = None, check: bool = True) -> Database:
    """Open (creating if needed) the store with WAL, foreign keys and a busy timeout.

    With `check`, a store up to QUICK_CHECK_MAX_BYTES gets `PRAGMA quick_check` first and a
    damaged one is refused before anything writes to it. One connection per thread or process;
    callers must not share it across threads.
    """
    try:
        path = path or paths.db_path()
    except OSError as exc:
        raise StoreError(f"cannot create the home folder: {exc.strerror or exc} ({exc.filename})") from exc
    if path.exists() and paths.not_regular(path):
        raise StoreError(f"{path}: {paths.not_regular(path)}; the store must be a regular file")
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db = Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if check and path.exists() and path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                conn.close()
                raise StoreDamaged(recovery_hint(path) + f" (quick_check: {'; '.join(problems)[:300]})")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        migrations.apply(db)
    except StoreError:
        raise
    except sqlite3.DatabaseError as exc:
        err = explain(exc, path)
        if type(err) is StoreError and "failed:" in str(err):
            raise StoreError(f"cannot open the store at {path}: {exc} (is it a selfspec database?)") from exc
        raise err from exc
    for name in paths.STORE_FILES:
        paths.make_private(path.parent / name)
    return db


def integrity_check(db: Database | sqlite3.Connection) -> list[str]:
    """The full check (every page, index and constraint): ['ok'] or what is wrong."""
    return [r[0] for r in db.execute("PRAGMA integrity_check(20)").fetchall()]


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
