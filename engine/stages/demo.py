"""The embedded default, end to end: a biomedicine project from the shipped seeds and corpus.

Idempotent: a second run finds everything in place and only adds what is missing, so it
doubles as the resume path after an interrupted demo. Later stages join the chain here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import paths
from engine.stages.context import Context
from engine.stages.corpus import Searcher, import_corpus
from engine.stages.models import DEFAULT_MODEL, resolve
from engine.stages.seeds_io import read_seed_file
from engine.store import adapters, generation, projects, runs, seeds
from engine.store.adapters import Adapter
from engine.store.records import Example, Project

DEMO_QUERY = "How do ACE inhibitors lower blood pressure?"


DEMO_SEED = 2026
DEMO_ADAPTER = "demo-expert"
DEMO_QUESTION = "How do ACE inhibitors lower blood pressure?"
DEMO_HOLD_OUT = 0.2
DEMO_EVAL_TOKENS = 64


def run_demo(
    ctx: Context, name: str = "demo", reset: bool = False, examples: int = 6, train_epochs: int = 1
) -> dict[str, Any]:
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
    if generation.latest(ctx.db, project) is None and not seeds.held_out(ctx.db, project):
        from engine.stages.eval_data import reserve_seeds

        held = reserve_seeds(ctx.db, project, DEMO_HOLD_OUT)  # before any prompt has seen them
        ctx.log(f"held out {held['held_out']} seeds for the evaluation; {held['for_generation']} remain for generation")
    ctx.check_stop()

    with ctx.exclusive("corpus import", "demo"):
        corpus = import_corpus(ctx, [shipped / "corpus" / "biomedicine"])
    hits = Searcher(ctx).search(DEMO_QUERY, 3)
    ctx.check_stop()

    with ctx.exclusive("generation", "demo"):
        made = _generate(ctx, project, examples) if examples > 0 else []
    ctx.check_stop()
    with ctx.exclusive("training", "demo"):
        expert = _train(ctx, train_epochs) if train_epochs > 0 and made else None
    ctx.check_stop()
    with ctx.exclusive("export", "demo"):
        exported = _export(ctx, expert) if expert else {}
    ctx.check_stop()
    with ctx.exclusive("evaluation", "demo"):
        evaluated = _evaluate(ctx, expert) if expert else {}
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
        "adapter": expert.name if expert else "none",
        "train_steps": expert.metrics.get("steps", 0) if expert else 0,
        "train_loss": _round(expert.metrics.get("final_loss")) if expert else "none",
        "val_loss": _round(expert.metrics.get("val_loss")) if expert else "none",
        **exported,
        **evaluated,
        "problems": corpus.get("problems", []),
    }


def _generate(ctx: Context, project: Project, examples: int) -> list[Example]:
    """A small generation with the embedded default; resumed or extended on a rerun, never repeated."""
    from engine.stages.generate import open_generation, run_generation

    last = generation.latest(ctx.db, project)
    if last is not None and last.phase == "done" and last.target >= examples:
        ctx.log(f"generation {last.id} already has its examples")
    else:
        options: dict[str, Any] = (
            {} if last else {"seed": DEMO_SEED, "max_tokens": 384, "response_max_tokens": 200, "calibration_seeds": 12}
        )
        gen = open_generation(ctx, options, examples, last.id if last else None, False)
        run_generation(ctx, gen)
    return generation.examples(ctx.db, project, limit=3)


def _train(ctx: Context, epochs: int) -> Adapter:
    """A small adapter on the demo's examples. Nobody reviews the demo's data, so pending counts."""
    from engine.stages.train import open_training, run_training

    project = ctx.need_project()
    found = [a for a in adapters.list_for(ctx.db, project) if a.name == DEMO_ADAPTER]
    if found and found[0].status == "done":
        ctx.log(f"adapter {DEMO_ADAPTER!r} is already trained")
        return found[0]
    options = {"include_pending": True, "epochs": epochs, "batch_size": 4, "micro_batch": 2}
    adapter = open_training(
        ctx, {} if found else options, None if found else DEMO_ADAPTER, DEMO_ADAPTER if found else None, False
    )
    run_training(ctx, adapter)
    return adapters.get(ctx.db, adapter.id)


def _export(ctx: Context, expert: Adapter) -> dict[str, Any]:
    """Q8_0 GGUF of the demo expert with its parity check, then one question to base and expert."""
    from engine.backends.gguf_export import answer
    from engine.stages.export import gguf_name, run_export

    done = run_export(ctx, expert.name, ["q8_0"], lora=True, parity_check=True)
    folder = Path(done["folder"])
    ctx.log(f"asking base and expert: {DEMO_QUESTION!r}")
    _, base_path, _ = resolve(ctx.db, DEFAULT_MODEL)
    base = answer(base_path, DEMO_QUESTION, "chat", ctx.threads)
    tuned = answer(folder / gguf_name("q8_0"), DEMO_QUESTION, "alpaca", ctx.threads)
    return {
        "gguf": str(folder / gguf_name("q8_0")),
        "parity_f16": done.get("parity_f16", "not run"),
        "parity_q8_0": done.get("parity_q8_0", "not run"),
        "question": DEMO_QUESTION,
        "base_answer": clip(base, 200),
        "expert_answer": clip(tuned, 200),
    }


def _evaluate(ctx: Context, expert: Adapter) -> dict[str, Any]:
    """Base vs the Q8_0 expert on the held-out seeds and the off-domain set; the table is printed."""
    from engine.eval_report import headline_text, table_rows
    from engine.stages import eval_data
    from engine.stages.evaluate import run_eval

    project = ctx.need_project()
    sets = [*eval_data.held_out_seed_sets(ctx.db, project), eval_data.general_set()]
    results = run_eval(ctx, sets, ["base", f"{expert.name}:q8_0"], 0, DEMO_EVAL_TOKENS)
    header, rows = table_rows(results)
    ctx.result({"view": "table", "header": header, "rows": rows, "empty": "no results"})
    out = {"evaluation": results["eval_id"], "headline": headline_text(results)}
    for key in ("domain_mean_difference", "off_domain_mean_difference"):
        if key in results:
            out[key.replace("_mean", "")] = f"{results[key]:+.3f}"
    return out


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def clip(text: str, width: int) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
