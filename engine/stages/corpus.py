"""Corpus stage: read files -> chunk -> store; embed missing chunks; keep the index in sync.

Resumable by construction: each document is stored with its chunks in one transaction and
skipped by content hash when seen again; vectors are stored per batch; the hnswlib file is
a cache of the stored vectors, brought up to date (or rebuilt) from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from engine import paths
from engine.errors import Problem, UserError
from engine.stages.chunking import chunk_text
from engine.stages.context import Context
from engine.stages.corpus_files import RawDocument, discover, read_documents
from engine.store import corpus as store
from engine.store.records import Chunk, Project

EMBED_BATCH = 64
DEFAULTS = {"embedder": "all-MiniLM-L6-v2", "chunk_tokens": 160, "chunk_overlap": 32}


def settings(project: Project) -> dict[str, Any]:
    return {**DEFAULTS, **{k: v for k, v in project.settings.items() if k in DEFAULTS}}


def index_path(project: Project) -> Path:
    return paths.project_dir(project.name) / "index" / "chunks.hnsw"


def project_embedder(project: Project):  # type: ignore[no-untyped-def]
    from engine.backends.embedder import load_embedder

    return load_embedder(settings(project)["embedder"])


def import_corpus(ctx: Context, inputs: list[Path]) -> dict[str, Any]:
    project = ctx.need_project()
    conf = settings(project)
    files, problems = discover(inputs)
    embedder = project_embedder(project) if files else None
    counts = {"files": len(files), "documents": 0, "chunks": 0, "already_imported": 0, "skipped": 0}
    progress = ctx.progress("read", len(files), "files")
    for path in files:
        ctx.check_stop()
        for item in read_documents(path):
            if isinstance(item, Problem):
                problems.append(item)
                ctx.log(f"skipped {item}", "warning")
                continue
            added = _store_document(ctx.db, project, item, embedder, conf)
            if added is None:
                counts["already_imported"] += 1
            else:
                counts["documents"] += 1
                counts["chunks"] += added
        progress.advance()
    counts["skipped"] = len(problems)
    if embedder is not None:
        counts.update(embed_missing(ctx, embedder))
        counts.update(sync_index(ctx, embedder.dim, embedder.name))
    return {**counts, "problems": [str(p) for p in problems]}


def _store_document(
    db: Database, project: Project, doc: RawDocument, embedder: Any, conf: dict[str, Any]
) -> int | None:
    sha = doc.sha256
    if store.has_document(db, project, sha):
        return None
    chunks = chunk_text(doc.text, embedder.token_spans(doc.text), conf["chunk_tokens"], conf["chunk_overlap"])
    if not store.add_document(db, project, doc.source, doc.title, sha, len(doc.text), chunks):
        return None
    return len(chunks)


def embed_missing(ctx: Context, embedder: Any = None) -> dict[str, int]:
    """Embed every chunk that has no vector yet, one committed batch at a time."""
    project = ctx.need_project()
    embedder = embedder or project_embedder(project)
    todo = store.count_missing_vectors(ctx.db, project, embedder.name)
    progress = ctx.progress("embed", todo, "chunks")
    done = 0
    while True:
        ctx.check_stop()
        batch = store.chunks_missing_vectors(ctx.db, project, embedder.name, EMBED_BATCH)
        if not batch:
            break
        vectors = embedder.embed([c.text for c in batch])
        rows = [(c.id, vectors[i].astype(np.float32).tobytes()) for i, c in enumerate(batch)]
        store.save_vectors(ctx.db, embedder.name, embedder.dim, rows)
        done += len(batch)
        progress.advance(len(batch))
    return {"embedded": done}


def sync_index(ctx: Context, dim: int, model: str, rebuild: bool = False) -> dict[str, int]:
    """Add stored vectors the index lacks (or rebuild it from the store) and save atomically."""
    from engine.backends.vector_index import VectorIndex

    project = ctx.need_project()
    path = index_path(project)
    if rebuild:
        for stale in (path, path.with_name(path.name + ".json")):
            stale.unlink(missing_ok=True)
    index = VectorIndex(path, model, dim, threads=ctx.threads)
    have = index.ids()
    want = store.vector_ids(ctx.db, project, model)
    missing = want - have
    progress = ctx.progress("index", len(missing), "vectors")
    added = 0
    for batch in store.iter_vectors(ctx.db, project, model):
        ctx.check_stop()
        rows = [(cid, blob) for cid, blob in batch if cid in missing]
        if not rows:
            continue
        vectors = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        index.add([cid for cid, _ in rows], vectors)
        added += len(rows)
        progress.advance(len(rows))
    if added or not index.loaded_from_disk:
        index.save()
    return {"indexed": added, "index_size": len(index)}


@dataclass(frozen=True)
class Hit:
    score: float
    chunk: Chunk

    def as_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "score": round(self.score, 4),
            "chunk_id": c.id,
            "source": c.source,
            "ordinal": c.ordinal,
            "chars": [c.char_start, c.char_end],
            "text": c.text,
        }


class Searcher:
    """Holds the embedder and index in memory for repeated queries (the TUI's search box)."""

    def __init__(self, ctx: Context, embedder: Any = None) -> None:
        from engine.backends.vector_index import VectorIndex

        self.ctx = ctx
        project = ctx.need_project()
        self.embedder = embedder or project_embedder(project)
        if store.count_missing_vectors(ctx.db, project, self.embedder.name):
            ctx.log("some chunks are not embedded yet; run: selfspec-tui corpus index", "warning")
        path = index_path(project)
        index = VectorIndex(path, self.embedder.name, self.embedder.dim, threads=ctx.threads)
        if index.ids() != store.vector_ids(ctx.db, project, self.embedder.name):
            ctx.log("the index is out of date with the store; bringing it up to date")
            sync_index(ctx, self.embedder.dim, self.embedder.name, rebuild=not index.loaded_from_disk)
            index = VectorIndex(path, self.embedder.name, self.embedder.dim, threads=ctx.threads)
        self.index = index

    def search(self, query: str, k: int = 5) -> list[Hit]:
        query = query.strip()
        if not query:
            raise UserError("empty search query")
        if k < 1:
            raise UserError("k must be at least 1")
        vector = self.embedder.embed([query])[0]
        found = self.index.search(vector, k)
        chunks = store.get_chunks(self.ctx.db, [cid for cid, _ in found])
        return [Hit(score, chunks[cid]) for cid, score in found if cid in chunks]
