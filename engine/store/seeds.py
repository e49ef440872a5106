"""Seed sets and seed tasks."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.errors import UserError, ValidationError
from engine.schema import SeedDraft, check_seed
from engine.store.db import now, write_txn
from engine.store.records import Project, Seed, SeedSet, from_row


def _set(row: dict[str, Any]) -> SeedSet:
    return from_row(SeedSet, row)


def _seed(row: dict[str, Any]) -> Seed:
    return from_row(Seed, row)


def list_sets(db: Database, project: Project) -> list[SeedSet]:
    sql = (
        "SELECT s.*, (SELECT count(*) FROM seeds WHERE set_id = s.id) AS count"
        " FROM seed_sets s WHERE project_id = ? ORDER BY name"
    )
    return [_set(r) for r in db.query(sql, [project.id])]


def get_set(db: Database, project: Project, name: str) -> SeedSet | None:
    rows = [s for s in list_sets(db, project) if s.name == name]
    return rows[0] if rows else None


def default_set_name(stem: str) -> str:
    """A seed set name from a file name: unsafe characters become '_'."""
    name = re.sub(r"[^a-z0-9._-]+", "_", stem.lower()).strip("._-")[:80]
    return name or "seeds"


def import_drafts(
    db: Database, project: Project, set_name: str, drafts: Iterable[SeedDraft], source: str = ""
) -> tuple[SeedSet, int, int]:
    """Add drafts to a set (created if new) in one transaction.

    Returns the set, how many were added and how many were already there (same instruction
    and input), so a repeated import adds nothing twice.
    """
    paths.validate_name(set_name, "seed set")
    added = skipped = 0
    with db.atomic():
        existing = get_set(db, project, set_name)
        if existing is None:
            db.execute(
                "INSERT INTO seed_sets (project_id, name, source, created_at) VALUES (?, ?, ?, ?)",
                [project.id, set_name, source, now()],
            )
            existing = get_set(db, project, set_name)
        assert existing is not None
        stamp = now()
        for d in drafts:
            cur = db.execute(
                "INSERT OR IGNORE INTO seeds (set_id, instruction, input, output, task_type,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [existing.id, d.instruction, d.input, d.output, d.task_type, stamp, stamp],
            )
            if cur.rowcount:
                added += 1
            else:
                skipped += 1
    result = get_set(db, project, set_name)
    assert result is not None
    return result, added, skipped


def list_seeds(
    db: Database,
    project: Project,
    text: str = "",
    task_type: str = "",
    set_name: str = "",
    held_out: bool | None = None,
) -> list[Seed]:
    """Seeds matching the filters; held_out=False leaves out those reserved for evaluation."""
    sql = "SELECT seeds.*, s.name AS set_name FROM seeds JOIN seed_sets s ON s.id = seeds.set_id WHERE s.project_id = ?"
    args: list[Any] = [project.id]
    if held_out is not None:
        sql += " AND seeds.held_out = ?"
        args.append(int(held_out))
    if text:
        sql += " AND (seeds.instruction LIKE ? OR seeds.input LIKE ? OR seeds.output LIKE ?)"
        args += [f"%{text}%"] * 3
    if task_type:
        sql += " AND seeds.task_type = ?"
        args.append(task_type)
    if set_name:
        sql += " AND s.name = ?"
        args.append(set_name)
    sql += " ORDER BY s.name, seeds.id"
    return [_seed(r) for r in db.query(sql, args)]


def held_out(db: Database, project: Project) -> list[Seed]:
    return sorted(list_seeds(db, project, held_out=True), key=lambda s: s.id)


def set_held_out(db: Database, project: Project, seed_ids: set[int]) -> None:
    """Exactly these seeds are held out for evaluation (all others go back to generation)."""
    with write_txn(db):
        db.execute(
            "UPDATE seeds SET held_out = 0 WHERE set_id IN (SELECT id FROM seed_sets WHERE project_id = ?)",
            [project.id],
        )
        for sid in sorted(seed_ids):
            db.execute("UPDATE seeds SET held_out = 1 WHERE id = ?", [sid])


def task_types(db: Database, project: Project) -> list[tuple[str, int]]:
    sql = (
        "SELECT task_type, count(*) AS n FROM seeds JOIN seed_sets s ON s.id = seeds.set_id"
        " WHERE s.project_id = ? GROUP BY task_type ORDER BY n DESC, task_type"
    )
    return [(r["task_type"], r["n"]) for r in db.query(sql, [project.id])]


def _validated(fields: dict[str, Any]) -> SeedDraft:
    draft, problems = check_seed(fields, "seed", None)
    if problems or draft is None:
        raise ValidationError(problems)
    return draft


def add_seed(db: Database, project: Project, set_name: str, fields: dict[str, Any]) -> Seed:
    draft = _validated(fields)
    the_set, added, _ = import_drafts(db, project, set_name, [draft], source="added by hand")
    if not added:
        raise UserError("that seed (same instruction and input) is already in the set")
    rows = list(
        db.query(
            "SELECT * FROM seeds WHERE set_id = ? AND instruction = ? AND input = ?",
            [the_set.id, draft.instruction, draft.input],
        )
    )
    return _seed(rows[0])


def update_seed(db: Database, seed_id: int, fields: dict[str, Any]) -> Seed:
    draft = _validated(fields)
    try:
        with db.atomic():
            cur = db.execute(
                "UPDATE seeds SET instruction = ?, input = ?, output = ?, task_type = ?, updated_at = ? WHERE id = ?",
                [draft.instruction, draft.input, draft.output, draft.task_type, now(), seed_id],
            )
    except sqlite3.IntegrityError:
        raise UserError("another seed in this set has the same instruction and input") from None
    if not cur.rowcount:
        raise UserError(f"no seed with id {seed_id}")
    return _seed(next(db.query("SELECT * FROM seeds WHERE id = ?", [seed_id])))


def delete_seed(db: Database, seed_id: int) -> None:
    with db.atomic():
        db.execute("DELETE FROM seeds WHERE id = ?", [seed_id])


def delete_set(db: Database, project: Project, name: str) -> None:
    with db.atomic():
        db.execute("DELETE FROM seed_sets WHERE project_id = ? AND name = ?", [project.id, name])
