"""Registered base models (GGUF files and Hugging Face folders)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sqlite_utils import Database

from engine.errors import UserError
from engine.store.db import now
from engine.store.records import ModelRecord, from_row


def _model(row: dict[str, Any]) -> ModelRecord:
    return from_row(ModelRecord, row, ("info",))


def add(db: Database, name: str, kind: str, path: str, architecture: str, info: dict[str, Any]) -> ModelRecord:
    try:
        with db.atomic():
            db.execute(
                "INSERT INTO models (name, kind, path, architecture, info, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                [name, kind, path, architecture, json.dumps(info), now()],
            )
    except sqlite3.IntegrityError:
        raise UserError(f"a model named {name!r} is already registered") from None
    found = get(db, name)
    assert found is not None
    return found


def get(db: Database, name: str) -> ModelRecord | None:
    rows = list(db.query("SELECT * FROM models WHERE name = ?", [name]))
    return _model(rows[0]) if rows else None


def list_all(db: Database) -> list[ModelRecord]:
    return [_model(r) for r in db.query("SELECT * FROM models ORDER BY name")]


def remove(db: Database, name: str) -> None:
    with db.atomic():
        cur = db.execute("DELETE FROM models WHERE name = ?", [name])
    if not cur.rowcount:
        raise UserError(f"no registered model named {name!r}")
