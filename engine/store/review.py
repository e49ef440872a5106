"""Review state of examples: filtered id lists, decisions, flags, versioned edits and undo.

Every decision is one immediate-mode transaction that also writes an undo record
(review_actions + one review_changes row per example it really changed), so a crash loses
nothing and several processes can review the same project: the write lock is taken before
anything is read, and undo only reverts examples still in the state the action left them in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from engine.errors import UserError, ValidationError
from engine.schema import check_seed
from engine.spec.kinds import EXAMPLE_STATUSES
from engine.store.db import now, write_txn
from engine.store.records import Example, Project, from_row

STATUSES = EXAMPLE_STATUSES
APPROVED = ("accepted", "edited")
IMPORTED = 0  # Filter.generation value that selects examples not made by a generation
SORTS = {
    "id": "e.id",
    "status": "e.status",
    "type": "e.task_type",
    "instruction": "e.instruction",
    "reason": "e.flag",
    "rating": "coalesce(e.rating, 0)",
    "length": "e.chars",
    "run": "coalesce(e.generation_id, 0)",
}
PREVIEW_CHARS = 160


@dataclass(frozen=True)
class Filter:
    """What the review table shows. Empty fields do not filter."""

    status: str = ""
    task_type: str = ""
    reason: str = ""  # substring of the flag / drop reason, case-insensitive
    flagged: bool = False
    generation: int | None = None  # IMPORTED (0) = imported examples
    search: str = ""  # full-text (FTS5) over instruction, input and output
    ids: tuple[int, ...] = ()

    def check(self) -> None:
        if self.status and self.status not in STATUSES:
            raise UserError(f"unknown status {self.status!r} (one of: {', '.join(STATUSES)})")


@dataclass(frozen=True)
class RowView:
    """What one table line needs; the full example is loaded only for the detail pane."""

    id: int
    status: str
    task_type: str
    preview: str
    flag: str
    chars: int
    generation_id: int | None
    version: int
    rating: int | None = None


@dataclass(frozen=True)
class Version:
    version: int
    instruction: str
    input: str
    output: str
    task_type: str
    created_at: str


@dataclass(frozen=True)
class Outcome:
    """What one decision did: the action id (for undo) and the examples it changed."""

    action_id: int | None
    kind: str
    changed: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (old status, new status)


@dataclass(frozen=True)
class UndoOutcome:
    kind: str
    reverted: dict[int, tuple[str, str]]  # id -> (status before undo, status after undo)
    conflicts: list[int]


def fts_query(text: str) -> str:
    """User text to an FTS5 query: every word must appear (as a prefix); syntax cannot break it."""
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"*' for w in words)


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally (ESCAPE '\\')."""
    return "%" + re.sub(r"([%_\\])", r"\\\1", text) + "%"


def _where(project: Project, f: Filter) -> tuple[str, list[Any]]:
    f.check()
    sql = ["e.project_id = ?"]
    params: list[Any] = [project.id]
    if f.status:
        sql.append("e.status = ?")
        params.append(f.status)
    if f.task_type:
        sql.append("e.task_type = ?")
        params.append(f.task_type)
    if f.flagged:
        sql.append("e.flag != ''")
    if f.reason:
        sql.append("e.flag LIKE ? ESCAPE '\\'")
        params.append(contains_pattern(f.reason))
    if f.generation == IMPORTED:
        sql.append("e.generation_id IS NULL")
    elif f.generation is not None:
        sql.append("e.generation_id = ?")
        params.append(f.generation)
    query = fts_query(f.search)
    if query:
        sql.append("e.id IN (SELECT rowid FROM examples_fts WHERE examples_fts MATCH ?)")
        params.append(query)
    if f.ids:  # look the ids up by primary key, not by scanning the project ('+' disables that index)
        sql[0] = "+e.project_id = ?"
        sql.append("e.id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(f.ids)))
    return " AND ".join(sql), params


def ids(db: Database, project: Project, f: Filter, sort: str = "id", descending: bool = False) -> list[tuple[int, str]]:
    """(id, status) of every example the filter selects, in display order."""
    if sort not in SORTS:
        raise UserError(f"cannot sort by {sort!r} (one of: {', '.join(SORTS)})")
    where, params = _where(project, f)
    order = f"{SORTS[sort]} {'DESC' if descending else 'ASC'}, e.id {'DESC' if descending else 'ASC'}"
    rows = db.execute(f"SELECT e.id, e.status FROM examples e WHERE {where} ORDER BY {order}", params).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def row_views(db: Database, example_ids: list[int]) -> dict[int, RowView]:
    if not example_ids:
        return {}
    marks = ", ".join("?" * len(example_ids))
    rows = db.execute(
        f"SELECT id, status, task_type, substr(instruction, 1, {PREVIEW_CHARS}), flag, chars, generation_id, version,"
        f" rating FROM examples WHERE id IN ({marks})",
        example_ids,
    ).fetchall()
    return {int(r[0]): RowView(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6], int(r[7]), r[8]) for r in rows}


def set_rating(db: Database, project: Project, example_ids: list[int], rating: int | None) -> int:
    """A reviewer's 1-5 rating (None clears it) on these examples of the project; returns how many.
    A rating is a note beside the decision: it changes no status and is not undone by `undo`."""
    if rating is not None and not 1 <= rating <= 5:
        raise UserError(f"a rating is 1 to 5, not {rating}")
    if not example_ids:
        return 0
    marks = ", ".join("?" * len(example_ids))
    with write_txn(db):
        cur = db.execute(
            f"UPDATE examples SET rating = ?, updated_at = ? WHERE project_id = ? AND id IN ({marks})",
            [rating, now(), project.id, *example_ids],
        )
    return int(cur.rowcount)


def get(db: Database, example_id: int) -> Example:
    rows = list(db.query("SELECT * FROM examples WHERE id = ?", [example_id]))
    if not rows:
        raise UserError(f"no example with id {example_id}")
    return from_row(Example, rows[0], ("provenance", "passages"))


def counts(db: Database, project: Project) -> dict[str, int]:
    found = dict.fromkeys(STATUSES, 0)
    for status, n in db.execute(
        "SELECT status, count(*) FROM examples WHERE project_id = ? GROUP BY status", [project.id]
    ).fetchall():
        found[status] = int(n)
    return found


def stats(db: Database, project: Project) -> dict[str, Any]:
    """Counts by status, by task type and status, by flag and by generation (imported = 0)."""

    def grouped(col: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        rows = db.execute(
            f"SELECT {col}, status, count(*) FROM examples WHERE project_id = ? GROUP BY 1, 2 ORDER BY 1",
            [project.id],
        ).fetchall()
        for key, status, n in rows:
            out.setdefault(str(key), dict.fromkeys(STATUSES, 0))[status] = int(n)
        return out

    by_flag = db.execute(
        "SELECT flag, count(*) FROM examples WHERE project_id = ? AND flag != '' GROUP BY flag ORDER BY 2 DESC",
        [project.id],
    ).fetchall()
    return {
        "status": counts(db, project),
        "task_type": grouped("task_type"),
        "generation": grouped("coalesce(generation_id, 0)"),
        "flag": {str(k): int(n) for k, n in by_flag},
    }


def data_version(db: Database) -> int:
    """Changes when another connection commits: a cheap "has anyone else written?" probe."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def task_types(db: Database, project: Project) -> list[str]:
    rows = db.execute(
        "SELECT DISTINCT task_type FROM examples WHERE project_id = ? ORDER BY 1", [project.id]
    ).fetchall()
    return [str(r[0]) for r in rows]


# ---- decisions -------------------------------------------------------------------------------


def _record(
    db: Database,
    project: Project,
    session: str,
    kind: str,
    detail: str,
    changes: list[tuple[int, str, str, int, str, str, int]],
) -> int | None:
    if not changes:
        return None
    cur = db.execute(
        "INSERT INTO review_actions (project_id, kind, session, detail, changed, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [project.id, kind, session, detail, len(changes), now()],
    )
    action_id = int(cur.lastrowid or 0)
    db.conn.executemany(
        "INSERT INTO review_changes (action_id, example_id, before_status, before_flag, before_version,"
        " after_status, after_flag, after_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(action_id, *c) for c in changes],
    )
    return action_id


def set_status(db: Database, project: Project, f: Filter, status: str, session: str) -> Outcome:
    """Accept, reject or reset to pending every example the filter selects.

    Accepting leaves edited examples edited (an edit is an acceptance with corrections).
    """
    if status not in ("pending", "accepted", "rejected"):
        raise UserError(f"cannot set status {status!r} (accepted, rejected or pending)")
    where, params = _where(project, f)
    skip = APPROVED if status == "accepted" else (status,)
    with write_txn(db):
        rows = db.execute(
            f"SELECT e.id, e.status, e.flag, e.version FROM examples e WHERE {where}"
            f" AND e.status NOT IN ({', '.join('?' * len(skip))}) ORDER BY e.id",
            [*params, *skip],
        ).fetchall()
        stamp = now()
        db.conn.executemany(
            "UPDATE examples SET status = ?, updated_at = ? WHERE id = ?", [(status, stamp, r[0]) for r in rows]
        )
        changes = [(r[0], r[1], r[2], r[3], status, r[2], r[3]) for r in rows]
        action_id = _record(db, project, session, status, _describe(f), changes)
    return Outcome(action_id, status, {int(r[0]): (r[1], status) for r in rows})


def set_flag(db: Database, project: Project, f: Filter, reason: str, session: str) -> Outcome:
    """Flag (non-empty reason) or unflag (empty) the selected examples."""
    reason = " ".join(reason.split())[:200]
    where, params = _where(project, f)
    with write_txn(db):
        rows = db.execute(
            f"SELECT e.id, e.status, e.flag, e.version FROM examples e WHERE {where} AND e.flag != ? ORDER BY e.id",
            [*params, reason],
        ).fetchall()
        stamp = now()
        db.conn.executemany(
            "UPDATE examples SET flag = ?, updated_at = ? WHERE id = ?", [(reason, stamp, r[0]) for r in rows]
        )
        changes = [(r[0], r[1], r[2], r[3], r[1], reason, r[3]) for r in rows]
        action_id = _record(db, project, session, "flag" if reason else "unflag", reason, changes)
    return Outcome(action_id, "flag", {int(r[0]): (r[1], r[1]) for r in rows})


def edit(db: Database, project: Project, example_id: int, fields: dict[str, str], session: str) -> Outcome:
    """Save new text as a new version (the original is kept as version 0); status becomes edited."""
    draft, problems = check_seed(fields, f"example {example_id}", None)
    if draft is None:
        raise ValidationError(problems)
    with write_txn(db):
        row = db.execute(
            "SELECT instruction, input, output, task_type, status, flag, version FROM examples"
            " WHERE id = ? AND project_id = ?",
            [example_id, project.id],
        ).fetchone()
        if row is None:
            raise UserError(f"no example with id {example_id} in {project.name}")
        new_text = (draft.instruction, draft.input, draft.output, draft.task_type)
        if tuple(row[:4]) == new_text:
            return Outcome(None, "edit")
        stamp = now()
        top = db.execute("SELECT max(version) FROM example_versions WHERE example_id = ?", [example_id]).fetchone()[0]
        if top is None:
            db.execute(
                "INSERT INTO example_versions (example_id, version, instruction, input, output, task_type, created_at)"
                " VALUES (?, 0, ?, ?, ?, ?, ?)",
                [example_id, *row[:4], stamp],
            )
            top = 0
        version = int(top) + 1
        db.execute(
            "INSERT INTO example_versions (example_id, version, instruction, input, output, task_type, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [example_id, version, *new_text, stamp],
        )
        db.execute(
            "UPDATE examples SET instruction = ?, input = ?, output = ?, task_type = ?, status = 'edited',"
            " version = ?, updated_at = ? WHERE id = ?",
            [*new_text, version, stamp, example_id],
        )
        change = (example_id, row[4], row[5], row[6], "edited", row[5], version)
        action_id = _record(db, project, session, "edit", f"version {version}", [change])
    return Outcome(action_id, "edit", {example_id: (row[4], "edited")})


def versions(db: Database, example_id: int) -> list[Version]:
    rows = db.query(
        "SELECT version, instruction, input, output, task_type, created_at FROM example_versions"
        " WHERE example_id = ? ORDER BY version",
        [example_id],
    )
    return [from_row(Version, r) for r in rows]


def undo(db: Database, project: Project, session: str) -> UndoOutcome | None:
    """Revert this session's newest action not yet undone; None when there is nothing to undo.

    An example someone changed since (another window, the CLI) is left alone and reported.
    """
    with write_txn(db):
        act = db.execute(
            "SELECT id, kind FROM review_actions WHERE project_id = ? AND session = ? AND undone_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            [project.id, session],
        ).fetchone()
        if act is None:
            return None
        rows = db.execute(
            "SELECT c.example_id, c.before_status, c.before_flag, c.before_version, c.after_status, c.after_flag,"
            " c.after_version, e.status, e.flag, e.version FROM review_changes c JOIN examples e ON e.id = c.example_id"
            " WHERE c.action_id = ?",
            [act[0]],
        ).fetchall()
        reverted: dict[int, tuple[str, str]] = {}
        conflicts: list[int] = []
        stamp = now()
        for ex_id, b_status, b_flag, b_version, a_status, a_flag, a_version, status, flag, version in rows:
            if (status, flag, version) != (a_status, a_flag, a_version):
                conflicts.append(int(ex_id))
                continue
            if b_version != version:
                old = db.execute(
                    "SELECT instruction, input, output, task_type FROM example_versions"
                    " WHERE example_id = ? AND version = ?",
                    [ex_id, b_version],
                ).fetchone()
                db.execute(
                    "UPDATE examples SET instruction = ?, input = ?, output = ?, task_type = ?, version = ?"
                    " WHERE id = ?",
                    [*old, b_version, ex_id],
                )
            db.execute(
                "UPDATE examples SET status = ?, flag = ?, updated_at = ? WHERE id = ?",
                [b_status, b_flag, stamp, ex_id],
            )
            reverted[int(ex_id)] = (status, b_status)
        db.execute("UPDATE review_actions SET undone_at = ? WHERE id = ?", [stamp, act[0]])
    return UndoOutcome(str(act[1]), reverted, sorted(conflicts))


def _describe(f: Filter) -> str:
    parts = [f"{k}={v}" for k, v in vars(f).items() if v not in ("", None, False, ())]
    if f.ids and len(f.ids) > 5:
        parts = [p for p in parts if not p.startswith("ids=")] + [f"{len(f.ids)} ids"]
    return ", ".join(parts)[:300]
