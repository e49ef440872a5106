"""One writer per unit of work: a running generation, training, export, evaluation or corpus
import of a project holds a lock row tied to its process.

The lock is taken in one write transaction (so two processes cannot both get it), released on
any exit, and taken over when the holder is gone (kill -9, power loss): a pid that no longer
runs, or runs a different process (its start time differs), holds nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlite_utils import Database

from engine.errors import UserError
from engine.store.db import now, write_txn


class AlreadyRunning(UserError):
    pass


def proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return "zombie"
        return fields[19]
    except (OSError, IndexError):
        return ""


def holder_alive(pid: int, started: str) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now_start = proc_start(pid)
    if now_start == "zombie":
        return False
    return not (started and now_start and now_start != started)


def acquire(db: Database, project_id: int, unit: str, command: str) -> None:
    """Take the lock or raise AlreadyRunning naming the holder."""
    me = os.getpid()
    with write_txn(db):
        row = db.execute(
            "SELECT pid, proc_start, command, started_at FROM locks WHERE project_id = ? AND unit = ?",
            [project_id, unit],
        ).fetchone()
        if row is not None:
            pid, started, held_by, since = row
            if pid != me and holder_alive(int(pid), str(started)):
                raise AlreadyRunning(
                    f"{unit} is already running on this project (pid {pid}, `{held_by}`, started {since});"
                    " wait for it, or cancel it, then run again"
                )
        db.execute(
            "INSERT OR REPLACE INTO locks (project_id, unit, pid, proc_start, command, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [project_id, unit, me, proc_start(me), command, now()],
        )


def release(db: Database, project_id: int, unit: str) -> None:
    with write_txn(db):
        db.execute("DELETE FROM locks WHERE project_id = ? AND unit = ? AND pid = ?", [project_id, unit, os.getpid()])


@contextmanager
def held(db: Database, project_id: int, unit: str, command: str) -> Iterator[None]:
    acquire(db, project_id, unit, command)
    try:
        yield
    finally:
        try:
            release(db, project_id, unit)
        except Exception:  # the store failed under us: a dead pid frees the lock anyway
            pass


def holders(db: Database, project_id: int) -> dict[str, int]:
    """Units with a live holder: {unit: pid}."""
    rows = db.execute("SELECT unit, pid, proc_start FROM locks WHERE project_id = ?", [project_id]).fetchall()
    return {u: int(p) for u, p, s in rows if holder_alive(int(p), str(s))}
