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
from engine.store import generation, projects, runs, seeds
from engine.store.records import Example, Project

DEMO_QUERY = "How do ACE inhibitors lower blood pressure?"


DEMO_SEED = 2026


def run_demo(ctx: Context, name: str = "demo", reset: bool = False, examples: int = 6) -> dict[str, Any]:
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
    ctx.check_stop()

    made = _generate(ctx, project, examples) if examples > 0 else []
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
        "examples": counts["examples"],
        "sample_task": clip(made[0].instruction, 120) if made else "none",
        "sample_answer": clip(made[0].output, 160) if made else "none",
        "problems": corpus.get("problems", []),
    }


def _generate(ctx: Context, project: Project, examples: int) -> list[Example]:
    """A small generation with the embedded default; resumed or extended on a rerun, never repeated."""
    from engine.stages.generate import open_generation, run_generation

    last = generation.latest(ctx.db, project)
    if last is not None and last.phase == "done" and last.target >= examples:
        ctx.log(f"generation {last.id} already has its examples")
    else:
        options: dict[str, Any] = {} if last else {"seed": DEMO_SEED, "max_tokens": 384, "response_max_tokens": 200}
        gen = open_generation(ctx, options, examples, last.id if last else None, False)
        run_generation(ctx, gen)
    return generation.examples(ctx.db, project, limit=3)


def clip(text: str, width: int) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
