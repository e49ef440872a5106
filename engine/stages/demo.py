"""The embedded default, end to end: a biomedicine project from the shipped seeds and corpus.

Idempotent: a second run finds everything in place and only adds what is missing, so it
doubles as the resume path after an interrupted demo. Later stages join the chain here.
"""

from __future__ import annotations

from typing import Any

from engine import paths
from engine.stages.context import Context
from engine.stages.corpus import Searcher, import_corpus
from engine.stages.models import DEFAULT_MODEL, resolve
from engine.stages.seeds_io import read_seed_file
from engine.store import projects, runs, seeds

DEMO_QUERY = "How do ACE inhibitors lower blood pressure?"


def run_demo(ctx: Context, name: str = "demo", reset: bool = False) -> dict[str, Any]:
    shipped = paths.shipped_dir()
    kind, model_path, _ = resolve(ctx.db, DEFAULT_MODEL)
    if reset and projects.find(ctx.db, name):
        projects.delete(ctx.db, name)
    project = projects.find(ctx.db, name) or projects.create(ctx.db, name, "biomedicine", DEFAULT_MODEL, {"demo": True})
    ctx.project = project
    if ctx.run_id:
        runs.attach_project(ctx.db, ctx.run_id, project.id)
    ctx.log(f"project {name!r}: base model {DEFAULT_MODEL} ({model_path.name})")

    drafts = read_seed_file(shipped / "biomedicine.jsonl")
    the_set, added, _ = seeds.import_drafts(ctx.db, project, "biomedicine", drafts, "shipped")
    ctx.log(f"seed set 'biomedicine': {the_set.count} tasks ({added} new)")
    ctx.check_stop()

    corpus = import_corpus(ctx, [shipped / "corpus" / "biomedicine"])
    hits = Searcher(ctx).search(DEMO_QUERY, 3)
    counts = projects.summary(ctx.db, project)
    return {
        "project": name,
        "base_model": DEFAULT_MODEL,
        "seeds": counts["seeds"],
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "indexed": corpus.get("index_size", 0),
        "sample_query": DEMO_QUERY,
        "top_passage": f"{hits[0].score:.3f} {hits[0].chunk.source.rsplit('/', 1)[-1]}" if hits else "none",
        "problems": corpus.get("problems", []),
    }
