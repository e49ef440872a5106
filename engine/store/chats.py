"""Conversations with base and expert models; user turns are shared by all panes (pane -1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from engine.errors import UserError
from engine.store.db import now, write_txn
from engine.store.records import Project, from_row

SHARED = -1


@dataclass(frozen=True)
class Conversation:
    id: int
    project_id: int
    title: str
    models: list[str]
    system: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    pane: int
    role: str
    content: str
    model: str
    tokens: int
    seconds: float
    stopped: int
    created_at: str


def create(db: Database, project: Project, models: list[str], system: str, title: str) -> Conversation:
    stamp = now()
    with write_txn(db):
        cur = db.execute(
            "INSERT INTO conversations (project_id, title, models, system, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [project.id, title[:120], json.dumps(models), system, stamp, stamp],
        )
    return get(db, int(cur.lastrowid or 0))


def get(db: Database, conversation_id: int) -> Conversation:
    rows = list(db.query("SELECT * FROM conversations WHERE id = ?", [conversation_id]))
    if not rows:
        raise UserError(f"no conversation with id {conversation_id}")
    return from_row(Conversation, rows[0], ("models",))


def delete(db: Database, conversation_id: int) -> None:
    with write_txn(db):
        db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])  # messages cascade


def list_for(db: Database, project: Project) -> list[Conversation]:
    rows = db.query("SELECT * FROM conversations WHERE project_id = ? ORDER BY id DESC", [project.id])
    return [from_row(Conversation, r, ("models",)) for r in rows]


@dataclass(frozen=True)
class Reply:
    pane: int
    content: str
    model: str
    tokens: int
    seconds: float
    stopped: bool


def add_turn(db: Database, conversation_id: int, text: str, replies: list[Reply]) -> None:
    """One user turn and every pane's reply, in one transaction (the first turn also titles it)."""
    stamp = now()
    insert = (
        "INSERT INTO chat_messages (conversation_id, pane, role, content, model, tokens, seconds, stopped,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    with write_txn(db):
        db.execute(insert, [conversation_id, SHARED, "user", text, "", 0, 0.0, 0, stamp])
        for r in replies:
            db.execute(
                insert,
                [conversation_id, r.pane, "assistant", r.content, r.model, r.tokens, r.seconds, int(r.stopped), stamp],
            )
        db.execute(
            "UPDATE conversations SET updated_at = ?, title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
            [stamp, " ".join(text.split())[:120], conversation_id],
        )


def messages(db: Database, conversation_id: int) -> list[Message]:
    rows = db.query("SELECT * FROM chat_messages WHERE conversation_id = ? ORDER BY id", [conversation_id])
    return [from_row(Message, r) for r in rows]


def history(db: Database, conversation_id: int, pane: int) -> list[dict[str, Any]]:
    """The turns one pane's model has seen: each user turn with that pane's own answer.

    A turn whose answer is empty (stopped before the first token) is left out, so the model never
    sees a question it did not answer or two user turns in a row.
    """
    out: list[dict[str, Any]] = []
    question: str | None = None
    for m in messages(db, conversation_id):
        if m.pane == SHARED:
            question = m.content
        elif m.pane == pane and question is not None:
            if m.content.strip():
                out += [{"role": "user", "content": question}, {"role": "assistant", "content": m.content}]
            question = None
    return out
