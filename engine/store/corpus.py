"""Corpus documents, their chunks and the chunks' embedding vectors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from engine.store.db import now
from engine.store.records import Chunk, Document, Project, from_row


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    char_start: int
    char_end: int
    n_tokens: int


def _doc(row: dict[str, Any]) -> Document:
    return from_row(Document, row)


def _chunk(row: dict[str, Any]) -> Chunk:
    return from_row(Chunk, row)


def has_document(db: Database, project: Project, sha256: str) -> bool:
    row = db.execute("SELECT 1 FROM documents WHERE project_id = ? AND sha256 = ?", [project.id, sha256]).fetchone()
    return row is not None


def add_document(
    db: Database,
    project: Project,
    source: str,
    title: str,
    sha256: str,
    chars: int,
    chunks: Sequence[ChunkDraft],
) -> bool:
    """Store a document with all its chunks atomically; False if its content is already in."""
    with db.atomic():
        cur = db.execute(
            "INSERT OR IGNORE INTO documents (project_id, source, title, sha256, chars, imported_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [project.id, source, title, sha256, chars, now()],
        )
        if not cur.rowcount:
            return False
        doc_id = cur.lastrowid
        db.conn.executemany(
            "INSERT INTO chunks (document_id, project_id, ordinal, text, char_start, char_end,"
            " n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(doc_id, project.id, i, c.text, c.char_start, c.char_end, c.n_tokens) for i, c in enumerate(chunks)],
        )
    return True


def list_documents(db: Database, project: Project) -> list[Document]:
    sql = (
        "SELECT d.*, (SELECT count(*) FROM chunks WHERE document_id = d.id) AS n_chunks"
        " FROM documents d WHERE project_id = ? ORDER BY d.id"
    )
    return [_doc(r) for r in db.query(sql, [project.id])]


def chunks_missing_vectors(db: Database, project: Project, model: str, limit: int) -> list[Chunk]:
    """Chunks with no vector from `model` yet, oldest first: the embed stage's to-do list."""
    sql = (
        "SELECT c.* FROM chunks c LEFT JOIN chunk_vectors v"
        " ON v.chunk_id = c.id AND v.model = ?"
        " WHERE c.project_id = ? AND v.chunk_id IS NULL ORDER BY c.id LIMIT ?"
    )
    return [_chunk(r) for r in db.query(sql, [model, project.id, limit])]


def count_missing_vectors(db: Database, project: Project, model: str) -> int:
    sql = (
        "SELECT count(*) FROM chunks c LEFT JOIN chunk_vectors v"
        " ON v.chunk_id = c.id AND v.model = ?"
        " WHERE c.project_id = ? AND v.chunk_id IS NULL"
    )
    return int(db.execute(sql, [model, project.id]).fetchone()[0])


def save_vectors(db: Database, model: str, dim: int, rows: Sequence[tuple[int, bytes]]) -> None:
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO chunk_vectors (chunk_id, model, dim, vector) VALUES (?, ?, ?, ?)",
            [(cid, model, dim, blob) for cid, blob in rows],
        )


def iter_vectors(db: Database, project: Project, model: str, batch: int = 4096) -> Iterator[list[tuple[int, bytes]]]:
    """All stored vectors of the project for `model`, in batches (for index rebuilds)."""
    last = 0
    sql = (
        "SELECT v.chunk_id, v.vector FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id"
        " WHERE c.project_id = ? AND v.model = ? AND v.chunk_id > ? ORDER BY v.chunk_id LIMIT ?"
    )
    while True:
        rows = db.execute(sql, [project.id, model, last, batch]).fetchall()
        if not rows:
            return
        yield [(r[0], r[1]) for r in rows]
        last = rows[-1][0]


def vector_ids(db: Database, project: Project, model: str) -> set[int]:
    sql = (
        "SELECT v.chunk_id FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id"
        " WHERE c.project_id = ? AND v.model = ?"
    )
    return {r[0] for r in db.execute(sql, [project.id, model]).fetchall()}


def get_chunks(db: Database, ids: Sequence[int]) -> dict[int, Chunk]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    sql = (
        f"SELECT c.*, d.source AS source FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})"
    )
    return {r["id"]: _chunk(r) for r in db.query(sql, list(ids))}


def chunk_ids(db: Database, project: Project) -> list[int]:
    """Every chunk of the project's corpus, in a fixed order."""
    rows = db.execute(
        "SELECT id FROM chunks WHERE project_id = ? ORDER BY id",
        [project.id],
    ).fetchall()
    return [r[0] for r in rows]
