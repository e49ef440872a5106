"""Mixtures (Self-MoE): named sets of experts from one or more projects, sharing a base model, with
the router trained over them, its data fingerprint, per-step losses and metrics."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError
from engine.store.db import now, write_txn
from engine.store.records import from_row
from engine.store.steplog import MIXTURE_STEPS


@dataclass(frozen=True)
class Mixture:
    id: int
    name: str
    base_model: str
    experts: list[dict[str, Any]]
    """per expert, in router order: project, adapter, adapter_id, fingerprint, path (the peft folder)"""
    config: dict[str, Any]
    fingerprint: str
    """sha256 of the router's training data snapshot ('' before the first training run)"""
    examples: int
    status: str
    """created, training, interrupted, failed or done"""
    metrics: dict[str, Any]
    path: str
    created_at: str
    updated_at: str

    def expert_names(self) -> list[str]:
        return [f"{e['project']}/{e['adapter']}" for e in self.experts]

    def share_text(self, shares: list[float]) -> str:
        """'bio/expert-1 0.81 fin/expert-1 0.19': a share per expert, in router order."""
        return " ".join(f"{n} {s:.2f}" for n, s in zip(self.expert_names(), shares, strict=True))


def _mixture(row: dict[str, Any]) -> Mixture:
    return from_row(Mixture, {**row, "path": paths.from_stored(row["path"])}, ("experts", "config", "metrics"))


def create(db: Database, name: str, base_model: str, experts: list[dict[str, Any]], path: str) -> Mixture:
    stamp = now()
    with write_txn(db):
        if db.execute("SELECT 1 FROM mixtures WHERE name = ?", [name]).fetchone():
            raise UserError(f"a mixture named {name!r} already exists")
        cur = db.execute(
            "INSERT INTO mixtures (name, base_model, experts, path, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [name, base_model, json.dumps(experts, sort_keys=True), paths.to_stored(path), stamp, stamp],
        )
    return get(db, int(cur.lastrowid or 0))


def get(db: Database, mixture_id: int) -> Mixture:
    rows = list(db.query("SELECT * FROM mixtures WHERE id = ?", [mixture_id]))
    if not rows:
        raise UserError(f"no mixture with id {mixture_id}")
    return _mixture(rows[0])


def by_name(db: Database, name: str) -> Mixture:
    rows = list(db.query("SELECT * FROM mixtures WHERE name = ?", [name]))
    if not rows:
        known = ", ".join(m.name for m in list_all(db)) or "none yet"
        raise UserError(f"no mixture named {name!r} (mixtures: {known})")
    return _mixture(rows[0])


def list_all(db: Database) -> list[Mixture]:
    return [_mixture(r) for r in db.query("SELECT * FROM mixtures ORDER BY id")]


def start_training(db: Database, mixture_id: int, config: dict[str, Any], fingerprint: str, examples: int) -> None:
    """Freeze the router's settings and data for this mixture (its first training run)."""
    with write_txn(db):
        db.execute(
            "UPDATE mixtures SET config = ?, fingerprint = ?, examples = ?, status = 'training', updated_at = ?"
            " WHERE id = ?",
            [json.dumps(config, sort_keys=True), fingerprint, examples, now(), mixture_id],
        )


def set_config(db: Database, mixture_id: int, config: dict[str, Any]) -> None:
    with write_txn(db):
        db.execute(
            "UPDATE mixtures SET config = ?, updated_at = ? WHERE id = ?",
            [json.dumps(config, sort_keys=True), now(), mixture_id],
        )


def set_status(db: Database, mixture_id: int, status: str, metrics: dict[str, Any] | None = None) -> None:
    sets, params = ["status = ?", "updated_at = ?"], [status, now()]
    if metrics is not None:
        sets.append("metrics = ?")
        params.append(json.dumps(metrics, sort_keys=True))
    with write_txn(db):
        db.execute(f"UPDATE mixtures SET {', '.join(sets)} WHERE id = ?", [*params, mixture_id])


def update_metrics(db: Database, mixture_id: int, updates: dict[str, Any]) -> None:
    """Merge `updates` into the stored metrics in one write transaction (an export and an evaluation
    running side by side each add their part; neither writes back a stale copy)."""
    with write_txn(db):
        row = db.execute("SELECT metrics FROM mixtures WHERE id = ?", [mixture_id]).fetchone()
        metrics = {**json.loads(row[0] or "{}"), **updates} if row else dict(updates)
        db.execute(
            "UPDATE mixtures SET metrics = ?, updated_at = ? WHERE id = ?",
            [json.dumps(metrics, sort_keys=True), now(), mixture_id],
        )


record_step = MIXTURE_STEPS.record
forget_steps_after = MIXTURE_STEPS.forget_after
steps = MIXTURE_STEPS.read


def using_project(db: Database, project: str) -> list[str]:
    """Names of the mixtures with an expert from `project`."""
    return [m.name for m in list_all(db) if any(e["project"] == project for e in m.experts)]


def busy_unit(db: Database, m: Mixture) -> str | None:
    """A live run on this mixture (its lock lives with the first expert's project), if any."""
    from engine.store import locks

    owner = db.execute("SELECT id FROM projects WHERE name = ?", [m.experts[0]["project"]]).fetchone()
    if not owner:
        return None
    unit = f"mixture {m.name}"
    for held, pid in locks.holders(db, int(owner[0])).items():
        if (held == unit or held.startswith(unit + " ")) and pid != os.getpid():
            return f"{held} (pid {pid})"
    return None


def delete(db: Database, name: str) -> Mixture:
    """Delete the mixture's rows (its steps cascade) and then its folder (router, exports). Its
    experts, their projects and the evaluations stored there stay."""
    with write_txn(db):
        m = by_name(db, name)
        running = busy_unit(db, m)
        if running:
            raise UserError(f"mixture {name!r} is in use: {running} is running; cancel it first")
        db.execute("DELETE FROM mixtures WHERE id = ?", [m.id])
    root = paths.home() / "mixtures"
    folder = Path(m.path)
    if folder.exists() and folder.resolve().parent == root.resolve():  # never anything outside mixtures/
        shutil.rmtree(folder, ignore_errors=True)
    return m
