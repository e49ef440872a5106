"""Adapters (experts): one per training run, with config, data fingerprint, per-step losses, metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError
from engine.spec.kinds import JobStatus
from engine.store.db import now, write_txn
from engine.store.records import Project, from_row
from engine.store.steplog import TRAIN_STEPS


@dataclass(frozen=True)
class Adapter:
    id: int
    project_id: int
    name: str
    base_model: str
    status: JobStatus
    config: dict[str, Any]
    fingerprint: str
    examples: int
    metrics: dict[str, Any]
    path: str
    is_current: int
    created_at: str
    updated_at: str


def _adapter(row: dict[str, Any]) -> Adapter:
    return from_row(Adapter, {**row, "path": paths.from_stored(row["path"])}, ("config", "metrics"))


def create(
    db: Database, project: Project, name: str, config: dict[str, Any], fingerprint: str, examples: int, path: str
) -> Adapter:
    stamp = now()
    with write_txn(db):
        if db.execute("SELECT 1 FROM adapters WHERE project_id = ? AND name = ?", [project.id, name]).fetchone():
            raise UserError(f"{project.name} already has an adapter named {name!r}")
        cur = db.execute(
            "INSERT INTO adapters (project_id, name, base_model, config, fingerprint, examples, path, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                project.id,
                name,
                project.base_model,
                json.dumps(config, sort_keys=True),
                fingerprint,
                examples,
                paths.to_stored(path),
                stamp,
                stamp,
            ],
        )
    return get(db, int(cur.lastrowid or 0))


def get(db: Database, adapter_id: int) -> Adapter:
    rows = list(db.query("SELECT * FROM adapters WHERE id = ?", [adapter_id]))
    if not rows:
        raise UserError(f"no adapter with id {adapter_id}")
    return _adapter(rows[0])


def by_name(db: Database, project: Project, name: str) -> Adapter:
    rows = list(db.query("SELECT * FROM adapters WHERE project_id = ? AND name = ?", [project.id, name]))
    if not rows:
        known = ", ".join(a.name for a in list_for(db, project)) or "none yet"
        raise UserError(f"{project.name} has no adapter named {name!r} (adapters: {known})")
    return _adapter(rows[0])


def list_for(db: Database, project: Project) -> list[Adapter]:
    return [_adapter(r) for r in db.query("SELECT * FROM adapters WHERE project_id = ? ORDER BY id", [project.id])]


def current(db: Database, project: Project) -> Adapter | None:
    rows = list(db.query("SELECT * FROM adapters WHERE project_id = ? AND is_current = 1", [project.id]))
    return _adapter(rows[0]) if rows else None


def set_current(db: Database, project: Project, adapter_id: int) -> None:
    with write_txn(db):
        db.execute("UPDATE adapters SET is_current = 0 WHERE project_id = ?", [project.id])
        db.execute("UPDATE adapters SET is_current = 1 WHERE id = ? AND project_id = ?", [adapter_id, project.id])


def set_status(db: Database, adapter_id: int, status: str, metrics: dict[str, Any] | None = None) -> None:
    with write_txn(db):
        if metrics is None:
            db.execute("UPDATE adapters SET status = ?, updated_at = ? WHERE id = ?", [status, now(), adapter_id])
        else:
            db.execute(
                "UPDATE adapters SET status = ?, metrics = ?, updated_at = ? WHERE id = ?",
                [status, json.dumps(metrics, sort_keys=True), now(), adapter_id],
            )


def set_config(db: Database, adapter_id: int, config: dict[str, Any]) -> None:
    with write_txn(db):
        db.execute(
            "UPDATE adapters SET config = ?, updated_at = ? WHERE id = ?",
            [json.dumps(config, sort_keys=True), now(), adapter_id],
        )


record_step = TRAIN_STEPS.record
forget_steps_after = TRAIN_STEPS.forget_after
steps = TRAIN_STEPS.read


@dataclass(frozen=True)
class Export:
    id: int
    adapter_id: int
    status: JobStatus
    path: str
    files: dict[str, Any]
    parity: dict[str, Any]
    created_at: str
    updated_at: str


def _export(row: dict[str, Any]) -> Export:
    files = json.loads(row["files"] or "{}")
    files = {k: paths.from_stored(v) if isinstance(v, str) else v for k, v in files.items()}
    return from_row(
        Export, {**row, "path": paths.from_stored(row["path"]), "files": json.dumps(files)}, ("files", "parity")
    )


def start_export(db: Database, adapter: Adapter, path: str) -> Export:
    """The adapter's unfinished export (resumed), or a new one."""
    path = paths.to_stored(path)
    rows = list(db.query("SELECT * FROM exports WHERE adapter_id = ? ORDER BY id DESC LIMIT 1", [adapter.id]))
    if rows and rows[0]["status"] != "done" and rows[0]["path"] == path:
        update_export(db, int(rows[0]["id"]), "running")
        return get_export(db, int(rows[0]["id"]))
    stamp = now()
    with write_txn(db):
        cur = db.execute(
            "INSERT INTO exports (adapter_id, path, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [adapter.id, path, stamp, stamp],
        )
    return get_export(db, int(cur.lastrowid or 0))


def get_export(db: Database, export_id: int) -> Export:
    return _export(next(iter(db.query("SELECT * FROM exports WHERE id = ?", [export_id]))))


def update_export(
    db: Database, export_id: int, status: str, files: dict[str, Any] | None = None, parity: dict[str, Any] | None = None
) -> None:
    sets, params = ["status = ?", "updated_at = ?"], [status, now()]
    if files is not None:
        sets.append("files = ?")
        stored = {k: paths.to_stored(v) if isinstance(v, str) and v.startswith("/") else v for k, v in files.items()}
        params.append(json.dumps(stored, sort_keys=True))
    if parity is not None:
        sets.append("parity = ?")
        params.append(json.dumps(parity, sort_keys=True))
    with write_txn(db):
        db.execute(f"UPDATE exports SET {', '.join(sets)} WHERE id = ?", [*params, export_id])


def exports_for(db: Database, adapter: Adapter) -> list[Export]:
    return [_export(r) for r in db.query("SELECT * FROM exports WHERE adapter_id = ? ORDER BY id", [adapter.id])]
