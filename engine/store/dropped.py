"""Dropped tasks, for auditing the filters in Review (read-only: they never got an answer)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlite_utils import Database

from engine.store.records import Candidate, Project, from_row
from engine.store.review import Filter, contains_pattern

SORTS = {
    "id": "c.id",
    "status": "c.id",
    "type": "c.task_type",
    "instruction": "c.instruction",
    "reason": "c.reason",
    "length": "length(c.instruction) + length(c.input)",
    "run": "c.generation_id",
}


def ids(db: Database, project: Project, f: Filter, sort: str = "id", descending: bool = False) -> list[int]:
    """Candidate ids of the tasks the filters dropped, for auditing the filters."""
    sql = ["g.project_id = ?", "c.status = 'dropped'"]
    params: list[Any] = [project.id]
    if f.task_type:
        sql.append("c.task_type = ?")
        params.append(f.task_type)
    if f.reason:
        sql.append("(c.reason || ' ' || c.detail) LIKE ? ESCAPE '\\'")
        params.append(contains_pattern(f.reason))
    if f.generation is not None:
        sql.append("c.generation_id = ?")
        params.append(f.generation)
    for word in re.findall(r"\w+", f.search):
        sql.append("(c.instruction || ' ' || c.input) LIKE ? ESCAPE '\\'")
        params.append(contains_pattern(word))
    direction = "DESC" if descending else "ASC"
    rows = db.execute(
        f"SELECT c.id FROM candidates c JOIN generations g ON g.id = c.generation_id WHERE {' AND '.join(sql)}"
        f" ORDER BY {SORTS.get(sort, 'c.id')} {direction}, c.id {direction}",
        params,
    ).fetchall()
    return [int(r[0]) for r in rows]


def get_many(db: Database, candidate_ids: list[int]) -> dict[int, Candidate]:
    if not candidate_ids:
        return {}
    rows = db.query(
        "SELECT * FROM candidates WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(candidate_ids)]
    )
    return {int(r["id"]): from_row(Candidate, r) for r in rows}


def count(db: Database, project: Project) -> int:
    row = db.execute(
        "SELECT count(*) FROM candidates c JOIN generations g ON g.id = c.generation_id"
        " WHERE g.project_id = ? AND c.status = 'dropped'",
        [project.id],
    ).fetchone()
    return int(row[0])
