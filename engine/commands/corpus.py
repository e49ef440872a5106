"""corpus import|index|list|search|serve."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from engine import render
from engine.errors import UserError
from engine.spec import events as ev
from engine.stages.context import Context


def import_(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.corpus import import_corpus

    summary = import_corpus(ctx, [Path(p) for p in a.paths])
    if not summary["documents"] and not summary["already_imported"] and summary["problems"]:
        raise UserError("nothing imported:\n" + "\n".join(summary["problems"][:50]))
    return summary


def index(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.corpus import embed_missing, project_embedder, sync_index

    embedder = project_embedder(ctx.need_project())
    done = embed_missing(ctx, embedder)
    return {**done, **sync_index(ctx, embedder.dim, embedder.name, rebuild=a.rebuild)}


def list_(ctx: Context, a: Namespace) -> None:
    from engine.store import corpus

    docs = corpus.list_documents(ctx.db, ctx.need_project())
    rows = [[d.id, render.clip(d.title, 40), d.n_chunks, d.chars, d.source] for d in docs]
    ctx.table(
        ["id", "title", "chunks", "chars", "source"],
        rows,
        "no documents yet (selfspec-tui corpus import --project P PATH)",
    )


def search(ctx: Context, a: Namespace) -> None:
    from engine.stages.corpus import Searcher

    hits = Searcher(ctx).search(a.query, a.k)
    ctx.result({"view": "hits", "query": a.query, "hits": [h.as_dict() for h in hits]})


def serve(ctx: Context, a: Namespace) -> None:
    """Answer one JSON query per stdin line ({"query": ..., "k": ...}) until stdin closes."""
    from engine.stages.corpus import Searcher

    searcher = Searcher(ctx)
    ctx.emit(ev.Ready())
    for line in sys.stdin:
        if ctx.should_stop():
            break
        try:
            req = json.loads(line)
            hits = searcher.search(str(req.get("query", "")), int(req.get("k", 5)))
            ctx.result({"view": "hits", "query": req.get("query"), "hits": [h.as_dict() for h in hits]})
        except (ValueError, UserError, AttributeError, TypeError) as exc:
            ctx.log(str(exc), "error")
        except RecursionError:
            ctx.log("request nested too deeply", "error")
