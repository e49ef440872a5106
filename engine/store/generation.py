"""Generations: brainstorm prompts and their outputs, candidate tasks with filter decisions, examples.

Every unit of work is keyed (generation, prompt index[, item index]) under a UNIQUE constraint and
written in one transaction with everything derived from it, so a crash loses at most the unit in
flight and a resume never duplicates one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from engine.errors import UserError
from engine.store.db import now
from engine.store.records import Candidate, Example, Generation, Project, from_row


def _generation(row: dict[str, Any]) -> Generation:
    return from_row(Generation, row, ("config",))


def _example(row: dict[str, Any]) -> Example:
    return from_row(Example, row, ("provenance", "passages"))


def create(db: Database, project: Project, config: dict[str, Any], target: int) -> Generation:
    stamp = now()
    with db.atomic():
        cur = db.execute(
            "INSERT INTO generations (project_id, config, target, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [project.id, json.dumps(config, sort_keys=True), target, stamp, stamp],
        )
    return get(db, int(cur.lastrowid or 0))


def get(db: Database, generation_id: int) -> Generation:
    rows = list(db.query("SELECT * FROM generations WHERE id = ?", [generation_id]))
    if not rows:
        raise UserError(f"no generation with id {generation_id}")
    return _generation(rows[0])


def list_for(db: Database, project: Project) -> list[Generation]:
    rows = db.query("SELECT * FROM generations WHERE project_id = ? ORDER BY id", [project.id])
    return [_generation(r) for r in rows]


def latest(db: Database, project: Project) -> Generation | None:
    found = list_for(db, project)
    return found[-1] if found else None


def set_phase(db: Database, generation_id: int, phase: str) -> None:
    with db.atomic():
        db.execute("UPDATE generations SET phase = ?, updated_at = ? WHERE id = ?", [phase, now(), generation_id])


def set_config(db: Database, generation_id: int, config: dict[str, Any]) -> None:
    with db.atomic():
        db.execute(
            "UPDATE generations SET config = ?, updated_at = ? WHERE id = ?",
            [json.dumps(config, sort_keys=True), now(), generation_id],
        )


def set_target(db: Database, generation_id: int, target: int) -> None:
    with db.atomic():
        db.execute("UPDATE generations SET target = ?, updated_at = ? WHERE id = ?", [target, now(), generation_id])


# ---- stage 1: prompts and candidates -------------------------------------------------------


@dataclass(frozen=True)
class PromptRecord:
    idx: int
    seed_ids: list[int]
    mixed_ids: list[list[int]]  # (prompt index, item index) of kept tasks used as demonstrations
    output: str
    finish: str
    prompt_tokens: int
    tokens: int
    seconds: float
    passage_id: int | None = None
    """the corpus chunk the prompt was built on (grounded tasks)"""


@dataclass(frozen=True)
class CandidateDraft:
    item_idx: int
    instruction: str
    input: str
    task_type: str
    status: str
    reason: str = ""
    detail: str = ""


def save_prompts(db: Database, generation_id: int, batch: list[tuple[PromptRecord, list[CandidateDraft]]]) -> None:
    """Brainstorm prompts, their raw outputs and every candidate parsed from them, atomically."""
    stamp = now()
    with db.atomic():
        for prompt, drafts in batch:
            _insert_prompt(db, generation_id, prompt, drafts, stamp)
        db.execute("UPDATE generations SET updated_at = ? WHERE id = ?", [stamp, generation_id])


def _insert_prompt(
    db: Database, generation_id: int, prompt: PromptRecord, drafts: list[CandidateDraft], stamp: str
) -> None:
    db.execute(
        "INSERT INTO gen_prompts (generation_id, idx, seed_ids, mixed_ids, output, finish, prompt_tokens,"
        " tokens, seconds, created_at, passage_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            generation_id,
            prompt.idx,
            json.dumps(prompt.seed_ids),
            json.dumps(prompt.mixed_ids),
            prompt.output,
            prompt.finish,
            prompt.prompt_tokens,
            prompt.tokens,
            prompt.seconds,
            stamp,
            prompt.passage_id,
        ],
    )
    for d in drafts:
        db.execute(
            "INSERT INTO candidates (generation_id, prompt_idx, item_idx, instruction, input, task_type, status,"
            " reason, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                generation_id,
                prompt.idx,
                d.item_idx,
                d.instruction,
                d.input,
                d.task_type,
                d.status,
                d.reason,
                d.detail,
                stamp,
            ],
        )


def next_prompt_idx(db: Database, generation_id: int) -> int:
    row = db.execute("SELECT max(idx) FROM gen_prompts WHERE generation_id = ?", [generation_id]).fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def measured_rate(db: Database, model: str, runtime: str | None = None, last: int = 5) -> float | None:
    """Examples per second of the last finished generate runs of this model (on this runtime):
    what a new target will cost on this machine."""
    made = seconds = 0.0
    rows = db.execute(
        "SELECT counts FROM runs WHERE stage = 'generate' AND status = 'finished' ORDER BY id DESC LIMIT 200"
    ).fetchall()
    found = 0
    for (raw,) in rows:
        c = json.loads(raw or "{}")
        if c.get("model") != model or (runtime and c.get("runtime") != runtime):
            continue
        if c.get("examples_this_run", 0) > 0 and c.get("seconds_this_run", 0) > 0:
            made += c["examples_this_run"]
            seconds += c["seconds_this_run"]
            found += 1
            if found >= last:
                break
    return made / seconds if seconds else None


def prompt_totals(db: Database, generation_id: int) -> dict[str, float]:
    row = db.execute(
        "SELECT count(*), coalesce(sum(tokens), 0), coalesce(sum(seconds), 0) FROM gen_prompts WHERE generation_id = ?",
        [generation_id],
    ).fetchone()
    return {"prompts": row[0], "tokens": row[1], "seconds": row[2]}


def candidates(db: Database, generation_id: int, status: str | None = None) -> list[Candidate]:
    sql = "SELECT * FROM candidates WHERE generation_id = ?"
    params: list[Any] = [generation_id]
    if status:
        sql += " AND status = ?"
        params.append(status)
    rows = db.query(sql + " ORDER BY prompt_idx, item_idx", params)
    return [from_row(Candidate, r) for r in rows]


def drop_counts(db: Database, generation_id: int) -> dict[str, int]:
    rows = db.query(
        "SELECT reason, count(*) AS n FROM candidates WHERE generation_id = ? AND status = 'dropped'"
        " GROUP BY reason ORDER BY n DESC, reason",
        [generation_id],
    )
    return {r["reason"]: r["n"] for r in rows}


def status_counts(db: Database, generation_id: int) -> dict[str, int]:
    rows = db.query(
        "SELECT status, count(*) AS n FROM candidates WHERE generation_id = ? GROUP BY status", [generation_id]
    )
    found = {r["status"]: r["n"] for r in rows}
    return {"kept": found.get("kept", 0), "dropped": found.get("dropped", 0)}


# ---- stage 2: responses and examples -----------------------------------------------------------


RESPONSE_DROPS = (
    "prompt_too_long",
    "empty_response",
    "non_printable_response",
    "non_text_response",
    "non_ascii_response",
)


def stage2_candidates(db: Database, generation_id: int) -> list[Candidate]:
    """Every candidate that passed stage 1, answered or not, in a fixed order (batches align on it)."""
    marks = ",".join("?" * len(RESPONSE_DROPS))
    rows = db.query(
        f"SELECT * FROM candidates WHERE generation_id = ? AND (status = 'kept' OR reason IN ({marks}))"
        " ORDER BY prompt_idx, item_idx",
        [generation_id, *RESPONSE_DROPS],
    )
    return [from_row(Candidate, r) for r in rows]


def prompt_origins(db: Database, generation_id: int) -> dict[int, tuple[list[int], list[list[int]], int | None]]:
    """Per brainstorm prompt: the seed ids and kept tasks it showed, and its corpus passage (grounded)."""
    rows = db.query(
        "SELECT idx, seed_ids, mixed_ids, passage_id FROM gen_prompts WHERE generation_id = ?", [generation_id]
    )
    return {r["idx"]: (json.loads(r["seed_ids"]), json.loads(r["mixed_ids"]), r["passage_id"]) for r in rows}


def awaiting_response(db: Database, generation_id: int) -> list[Candidate]:
    """Kept candidates with no example yet, in the order they were kept."""
    rows = db.query(
        "SELECT c.* FROM candidates c LEFT JOIN examples e ON e.candidate_id = c.id"
        " WHERE c.generation_id = ? AND c.status = 'kept' AND e.id IS NULL ORDER BY c.prompt_idx, c.item_idx",
        [generation_id],
    )
    return [from_row(Candidate, r) for r in rows]


@dataclass(frozen=True)
class ExampleDraft:
    candidate: Candidate
    output: str
    flag: str
    provenance: dict[str, Any]
    passages: list[dict[str, Any]]


def save_responses(
    db: Database, project: Project, generation_id: int, made: list[ExampleDraft], dropped: list[tuple[int, str, str]]
) -> None:
    """A batch of answered candidates (examples) and candidates whose answer was junk, atomically."""
    stamp = now()
    with db.atomic():
        for d in made:
            c = d.candidate
            db.execute(
                "INSERT INTO examples (project_id, generation_id, candidate_id, instruction, input, output, task_type,"
                " flag, provenance, passages, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    project.id,
                    generation_id,
                    c.id,
                    c.instruction,
                    c.input,
                    d.output,
                    c.task_type,
                    d.flag,
                    json.dumps(d.provenance, sort_keys=True),
                    json.dumps(d.passages),
                    stamp,
                    stamp,
                ],
            )
        for cand_id, reason, detail in dropped:
            db.execute(
                "UPDATE candidates SET status = 'dropped', reason = ?, detail = ? WHERE id = ?",
                [reason, detail, cand_id],
            )
        db.execute("UPDATE generations SET updated_at = ? WHERE id = ?", [stamp, generation_id])


def count_examples(db: Database, generation_id: int) -> int:
    return int(db.execute("SELECT count(*) FROM examples WHERE generation_id = ?", [generation_id]).fetchone()[0])


def examples(db: Database, project: Project, generation_id: int | None = None, limit: int = 0) -> list[Example]:
    sql = "SELECT * FROM examples WHERE project_id = ?"
    params: list[Any] = [project.id]
    if generation_id is not None:
        sql += " AND generation_id = ?"
        params.append(generation_id)
    sql += " ORDER BY id"
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    return [_example(r) for r in db.query(sql, params)]


def other_instructions(db: Database, project: Project, generation_id: int) -> Iterator[str]:
    """Instructions of the project's examples from other generations or imports (the dedup pool)."""
    rows = db.query(
        "SELECT instruction FROM examples WHERE project_id = ? AND (generation_id IS NULL OR generation_id != ?)"
        " ORDER BY id",
        [project.id, generation_id],
    )
    for r in rows:
        yield r["instruction"]


def copy_tasks(db: Database, source_id: int, generation_id: int) -> int:
    """The brainstorm record of `source_id` (prompts and every candidate with its verdict) copied into
    a generation that answers the same tasks again (round 2), which then moves to answering; one
    transaction, so a crash leaves either nothing or everything. Returns the kept tasks copied."""
    stamp = now()
    with db.atomic():
        db.execute(
            "INSERT INTO gen_prompts (generation_id, idx, seed_ids, mixed_ids, output, finish, prompt_tokens,"
            " tokens, seconds, created_at, passage_id) SELECT ?, idx, seed_ids, mixed_ids, output, finish,"
            " prompt_tokens, tokens, seconds, ?, passage_id FROM gen_prompts WHERE generation_id = ?",
            [generation_id, stamp, source_id],
        )
        db.execute(
            "INSERT INTO candidates (generation_id, prompt_idx, item_idx, instruction, input, task_type, status,"
            " reason, detail, created_at) SELECT ?, prompt_idx, item_idx, instruction, input, task_type, status,"
            " reason, detail, ? FROM candidates WHERE generation_id = ?",
            [generation_id, stamp, source_id],
        )
        db.execute("UPDATE generations SET phase = 'respond', updated_at = ? WHERE id = ?", [stamp, generation_id])
    row = db.execute(
        "SELECT count(*) FROM candidates WHERE generation_id = ? AND status = 'kept'", [generation_id]
    ).fetchone()
    return int(row[0])
