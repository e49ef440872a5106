"""Projects: a name, a domain, a base model and free-form settings."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError
from engine.store.db import now, write_txn
from engine.store.records import Project, from_row


def _row(row: dict[str, Any]) -> Project:
    return from_row(Project, row, ("settings",))


def create(db: Database, name: str, domain: str, base_model: str, settings: dict[str, Any] | None = None) -> Project:
    paths.validate_project_name(name)
    domain = domain.strip()
    if not domain:
        raise UserError("a project needs a domain, e.g. 'biomedicine'")
    if not base_model.strip():
        raise UserError("a project needs a base model")
    try:
        with db.atomic():
            db.execute(
                "INSERT INTO projects (name, domain, base_model, settings, created_at) VALUES (?, ?, ?, ?, ?)",
                [name, domain, base_model, json.dumps(settings or {}), now()],
            )
    except sqlite3.IntegrityError:
        raise UserError(f"a project named {name!r} already exists") from None
    paths.project_dir(name).mkdir(parents=True, exist_ok=True)
    return get(db, name)


def get(db: Database, name: str) -> Project:
    rows = list(db.query("SELECT * FROM projects WHERE name = ?", [name]))
    if not rows:
        raise UserError(f"no project named {name!r} (see: selfspec-tui project list)")
    return _row(rows[0])


def find(db: Database, name: str) -> Project | None:
    rows = list(db.query("SELECT * FROM projects WHERE name = ?", [name]))
    return _row(rows[0]) if rows else None


def list_all(db: Database) -> list[Project]:
    return [_row(r) for r in db.query("SELECT * FROM projects ORDER BY name")]


def update_settings(db: Database, name: str, changes: dict[str, Any]) -> Project:
    project = get(db, name)
    merged = {**project.settings, **changes}
    with db.atomic():
        db.execute("UPDATE projects SET settings = ? WHERE id = ?", [json.dumps(merged), project.id])
    return get(db, name)


def delete(db: Database, name: str) -> None:
    """Delete the project's rows (cascading) and then its folder."""
    from engine.store import locks, mixtures

    project = get(db, name)
    with write_txn(db):
        busy = {u: p for u, p in locks.holders(db, project.id).items() if p != os.getpid()}
        if busy:
            unit, pid = next(iter(busy.items()))
            raise UserError(f"project {name!r} is in use: {unit} is running (pid {pid}); cancel it first")
        mixed = mixtures.using_project(db, name)
        if mixed:
            raise UserError(
                f"project {name!r} has experts in mixture(s) {', '.join(mixed)}, which would break:"
                f" delete those first (selfspec-tui mixture delete {mixed[0]} --yes)"
            )
        db.execute("DELETE FROM projects WHERE id = ?", [project.id])
    folder = paths.project_dir(name)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)


def summary(db: Database, project: Project) -> dict[str, int]:
    """Counts shown on the project dashboard."""

    def one(sql: str) -> int:
        return int(next(iter(db.execute(sql, [project.id]).fetchone()), 0) or 0)

    return {
        "seed_sets": one("SELECT count(*) FROM seed_sets WHERE project_id = ?"),
        "seeds": one("SELECT count(*) FROM seeds JOIN seed_sets s ON s.id = seeds.set_id WHERE s.project_id = ?"),
        "documents": one("SELECT count(*) FROM documents WHERE project_id = ?"),
        "chunks": one("SELECT count(*) FROM chunks WHERE project_id = ?"),
        "embedded": one(
            "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id WHERE c.project_id = ?"
        ),
        "examples": one("SELECT count(*) FROM examples WHERE project_id = ?"),
        "approved": one("SELECT count(*) FROM examples WHERE project_id = ? AND status IN ('accepted', 'edited')"),
        "pending": one("SELECT count(*) FROM examples WHERE project_id = ? AND status = 'pending'"),
    }
