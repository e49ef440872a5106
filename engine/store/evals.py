"""Evaluation runs and their per-item scores (each item scored once per model: the resume key)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from engine.errors import UserError
from engine.spec.kinds import JobStatus
from engine.store.db import now, write_txn
from engine.store.records import Project, from_row


@dataclass(frozen=True)
class Eval:
    id: int
    project_id: int
    status: JobStatus
    config_key: str
    config: dict[str, Any]
    fingerprints: dict[str, Any]
    results: dict[str, Any]
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ItemScore:
    dataset: str
    model: str
    item_key: str
    gold: str
    prediction: str
    score: float
    detail: dict[str, Any]


_JSON = ("config", "fingerprints", "results")


def create(
    db: Database, project: Project, config_key: str, config: dict[str, Any], fingerprints: dict[str, Any]
) -> Eval:
    stamp = now()
    with write_txn(db):
        cur = db.execute(
            "INSERT INTO evals (project_id, config_key, config, fingerprints, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [project.id, config_key, json.dumps(config), json.dumps(fingerprints), stamp, stamp],
        )
    return get(db, int(cur.lastrowid or 0))


def get(db: Database, eval_id: int) -> Eval:
    rows = list(db.query("SELECT * FROM evals WHERE id = ?", [eval_id]))
    if not rows:
        raise UserError(f"no evaluation with id {eval_id}")
    return from_row(Eval, rows[0], _JSON)


def list_for(db: Database, project: Project) -> list[Eval]:
    rows = db.query("SELECT * FROM evals WHERE project_id = ? ORDER BY id", [project.id])
    return [from_row(Eval, r, _JSON) for r in rows]


def _latest(db: Database, project: Project, config_key: str, done: bool) -> Eval | None:
    rows = list(
        db.query(
            "SELECT * FROM evals WHERE project_id = ? AND config_key = ? AND (status = 'done') = ?"
            " ORDER BY id DESC LIMIT 1",
            [project.id, config_key, int(done)],
        )
    )
    return from_row(Eval, rows[0], _JSON) if rows else None


def unfinished(db: Database, project: Project, config_key: str) -> Eval | None:
    """The newest evaluation with these settings that has not finished (to resume)."""
    return _latest(db, project, config_key, False)


def finished(db: Database, project: Project, config_key: str) -> Eval | None:
    """The newest finished evaluation with these settings (its results can be reused)."""
    return _latest(db, project, config_key, True)


def set_status(db: Database, eval_id: int, status: str, results: dict[str, Any] | None = None) -> None:
    with write_txn(db):
        if results is None:
            db.execute("UPDATE evals SET status = ?, updated_at = ? WHERE id = ?", [status, now(), eval_id])
        else:
            db.execute(
                "UPDATE evals SET status = ?, results = ?, updated_at = ? WHERE id = ?",
                [status, json.dumps(results), now(), eval_id],
            )


def record(db: Database, eval_id: int, scores: list[ItemScore]) -> None:
    """Store a batch of item scores in one transaction (a repeat of a stored item is ignored)."""
    with write_txn(db):
        for s in scores:
            db.execute(
                "INSERT OR IGNORE INTO eval_items (eval_id, dataset, model, item_key, gold, prediction, score, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [eval_id, s.dataset, s.model, s.item_key, s.gold, s.prediction, s.score, json.dumps(s.detail)],
            )


def scores(db: Database, eval_id: int) -> list[ItemScore]:
    rows = db.query(
        "SELECT dataset, model, item_key, gold, prediction, score, detail FROM eval_items WHERE eval_id = ?"
        " ORDER BY rowid",
        [eval_id],
    )
    return [from_row(ItemScore, r, ("detail",)) for r in rows]


def done_keys(db: Database, eval_id: int, dataset: str, model: str) -> set[str]:
    rows = db.query(
        "SELECT item_key FROM eval_items WHERE eval_id = ? AND dataset = ? AND model = ?", [eval_id, dataset, model]
    )
    return {r["item_key"] for r in rows}
