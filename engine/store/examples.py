"""Examples that enter or leave the project as a dataset: imports, and the training set."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from sqlite_utils import Database

from engine.errors import UserError
from engine.schema import SeedDraft
from engine.store.db import now, write_txn
from engine.store.records import Example, Project, from_row
from engine.store.review import APPROVED, STATUSES


def add_imported(
    db: Database, project: Project, drafts: list[tuple[int, SeedDraft]], status: str, source: str
) -> tuple[int, int]:
    """Store imported examples in one transaction; (added, already present). Exact repeats are skipped."""
    if status not in STATUSES or status == "edited":
        raise UserError(f"imported examples can be pending, accepted or rejected, not {status!r}")
    stamp = now()
    added = present = 0
    with write_txn(db):
        seen = {
            (r[0], r[1], r[2])
            for r in db.execute("SELECT instruction, input, output FROM examples WHERE project_id = ?", [project.id])
        }
        for line, d in drafts:
            key = (d.instruction, d.input, d.output)
            if key in seen:
                present += 1
                continue
            seen.add(key)
            db.execute(
                "INSERT INTO examples (project_id, instruction, input, output, task_type, status, provenance,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    project.id,
                    d.instruction,
                    d.input,
                    d.output,
                    d.task_type,
                    status,
                    json.dumps({"import": source, "line": line}),
                    stamp,
                    stamp,
                ],
            )
            added += 1
    return added, present


def training_set(
    db: Database, project: Project, include_pending: bool = False, generations: Sequence[int] = ()
) -> Iterator[Example]:
    """The examples a person approved (accepted or edited), optionally with those not yet reviewed,
    optionally only those of some generations."""
    wanted = (*APPROVED, "pending") if include_pending else APPROVED
    sql = f"SELECT * FROM examples WHERE project_id = ? AND status IN ({', '.join('?' * len(wanted))})"
    params: list[object] = [project.id, *wanted]
    if generations:
        sql += f" AND generation_id IN ({', '.join('?' * len(generations))})"
        params += list(generations)
    rows = db.query(sql + " ORDER BY id", params)
    for r in rows:
        yield from_row(Example, r, ("provenance", "passages"))


def texts(db: Database, project: Project) -> dict[int, str]:
    """Every example's instruction and input, by id (what similarity is judged on)."""
    rows = db.execute(
        "SELECT id, instruction, input FROM examples WHERE project_id = ? ORDER BY id", [project.id]
    ).fetchall()
    return {int(r[0]): f"{r[1]}\n{r[2]}".strip() for r in rows}
