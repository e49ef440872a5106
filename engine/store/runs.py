"""Runs of engine stages: what ran, with which config, how it ended."""

from __future__ import annotations

import json
import os
from typing import Any

from sqlite_utils import Database

from engine.store.db import now
from engine.store.records import Run, from_row

ACTIVE = "running"
ENDED = ("finished", "failed", "interrupted")


def _run(row: dict[str, Any]) -> Run:
    return from_row(Run, row, ("config", "counts"))


def start(db: Database, project_id: int | None, stage: str, config: dict[str, Any]) -> int:
    with db.atomic():
        cur = db.execute(
            "INSERT INTO runs (project_id, stage, config, status, pid, started_at) VALUES (?, ?, ?, ?, ?, ?)",
            [project_id, stage, json.dumps(config, sort_keys=True), ACTIVE, os.getpid(), now()],
        )
    return int(cur.lastrowid or 0)


def update_counts(db: Database, run_id: int, counts: dict[str, Any]) -> None:
    with db.atomic():
        db.execute("UPDATE runs SET counts = ? WHERE id = ?", [json.dumps(counts), run_id])


def end(db: Database, run_id: int, status: str, counts: dict[str, Any] | None = None, error: str = "") -> None:
    assert status in ENDED
    with db.atomic():
        db.execute(
            "UPDATE runs SET status = ?, ended_at = ?, error = ?, counts = coalesce(?, counts) WHERE id = ?",
            [status, now(), error, json.dumps(counts) if counts is not None else None, run_id],
        )


def get(db: Database, run_id: int) -> Run | None:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    return _run(rows[0]) if rows else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def reap_dead(db: Database) -> int:
    """Mark runs whose process vanished (kill -9, power loss) as interrupted."""
    dead = [r["id"] for r in db.query("SELECT id, pid FROM runs WHERE status = ?", [ACTIVE]) if not _alive(r["pid"])]
    for run_id in dead:
        end(db, run_id, "interrupted", error="the engine process disappeared")
    return len(dead)


def list_runs(db: Database, project_id: int | None = None, limit: int = 50) -> list[Run]:
    if project_id is None:
        rows = db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit])
    else:
        rows = db.query("SELECT * FROM runs WHERE project_id = ? ORDER BY id DESC LIMIT ?", [project_id, limit])
    return [_run(r) for r in rows]


def attach_project(db: Database, run_id: int, project_id: int) -> None:
    """For runs that create their project (the demo): file the run under it."""
    with db.atomic():
        db.execute("UPDATE runs SET project_id = ? WHERE id = ?", [project_id, run_id])
