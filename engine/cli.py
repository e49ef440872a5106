"""`python -m engine`: the headless CLI. The same commands back the TUI (with --format json)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine import cli_data, cli_eval, paths, render, runner
from engine.errors import UserError
from engine.events import json_sink
from engine.stages.context import Context


def _project_create(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages import models
    from engine.store import projects

    paths.validate_project_name(a.name)
    models.resolve(ctx.db, a.base_model)
    settings = {"embedder": models.check_embedder(a.embedder)} if a.embedder else {}
    p = projects.create(ctx.db, a.name, a.domain, a.base_model, settings)
    return {"created": p.name, "domain": p.domain, "base_model": p.base_model}


def _project_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import projects

    rows = []
    for p in projects.list_all(ctx.db):
        s = projects.summary(ctx.db, p)
        rows.append([p.name, p.domain, p.base_model, s["seeds"], s["documents"], s["chunks"]])
    ctx.result(
        {
            "view": "table",
            "header": ["name", "domain", "base model", "seeds", "docs", "chunks"],
            "rows": rows,
            "empty": "no projects yet (selfspec-tui project create NAME --domain D)",
        }
    )


def _project_delete(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import projects

    if not a.yes:
        raise UserError(f"deleting {a.name!r} removes its seeds, corpus and runs: pass --yes to confirm")
    projects.delete(ctx.db, a.name)
    return {"deleted": a.name}


def _seeds_import(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.seeds_io import read_seed_file
    from engine.store import seeds

    path = Path(a.file)
    drafts = read_seed_file(path)
    set_name = a.set if a.set is not None else seeds.default_set_name(path.stem)
    the_set, added, dup = seeds.import_drafts(ctx.db, ctx.need_project(), set_name, drafts, str(path))
    return {"seed_set": the_set.name, "added": added, "already_present": dup, "set_size": the_set.count}


def _seeds_validate(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from collections import Counter

    from engine.stages.seeds_io import read_seed_file

    drafts = read_seed_file(Path(a.file))
    types = Counter(d.task_type for d in drafts)
    return {"file": a.file, "valid_tasks": len(drafts), "task_types": dict(types.most_common())}


def _seeds_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import seeds

    found = seeds.list_seeds(ctx.db, ctx.need_project(), a.grep or "", a.task_type or "", a.set or "")
    rows = [[s.id, s.set_name, s.task_type, render.clip(s.instruction, 70)] for s in found]
    ctx.result(
        {"view": "table", "header": ["id", "set", "task type", "instruction"], "rows": rows, "empty": "no seeds match"}
    )


def _corpus_import(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.corpus import import_corpus

    with ctx.exclusive("corpus import", "corpus import"):
        summary = import_corpus(ctx, [Path(p) for p in a.paths])
    if not summary["documents"] and not summary["already_imported"] and summary["problems"]:
        raise UserError("nothing imported:\n" + "\n".join(summary["problems"][:50]))
    return summary


def _corpus_index(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.corpus import _embedder, embed_missing, sync_index

    with ctx.exclusive("corpus import", "corpus index"):
        embedder = _embedder(ctx.need_project())
        done = embed_missing(ctx, embedder)
        return {**done, **sync_index(ctx, embedder.dim, embedder.name, rebuild=a.rebuild)}


def _corpus_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import corpus

    docs = corpus.list_documents(ctx.db, ctx.need_project())
    rows = [[d.id, render.clip(d.title, 40), d.n_chunks, d.chars, d.source] for d in docs]
    ctx.result(
        {
            "view": "table",
            "header": ["id", "title", "chunks", "chars", "source"],
            "rows": rows,
            "empty": "no documents yet (selfspec-tui corpus import --project P PATH)",
        }
    )


def _corpus_search(ctx: Context, a: argparse.Namespace) -> None:
    from engine.stages.corpus import Searcher

    hits = Searcher(ctx).search(a.query, a.k)
    ctx.result({"view": "hits", "query": a.query, "hits": [h.as_dict() for h in hits]})


def _corpus_serve(ctx: Context, a: argparse.Namespace) -> None:
    """Answer one JSON query per stdin line ({"query": ..., "k": ...}) until stdin closes."""
    from engine.stages.corpus import Searcher

    searcher = Searcher(ctx)
    ctx.emit({"event": "ready"})
    for line in sys.stdin:
        if ctx.should_stop():
            break
        try:
            req = json.loads(line)
            hits = searcher.search(str(req.get("query", "")), int(req.get("k", 5)))
            ctx.result({"view": "hits", "query": req.get("query"), "hits": [h.as_dict() for h in hits]})
        except (ValueError, UserError, AttributeError, TypeError) as exc:
            ctx.emit({"event": "log", "level": "error", "message": str(exc)})
        except RecursionError:
            ctx.emit({"event": "log", "level": "error", "message": "request nested too deeply"})


def _models_add(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.models import register

    m = register(ctx.db, Path(a.path), a.name)
    return {"registered": m.name, "kind": m.kind, "architecture": m.architecture, "path": m.path}


def _models_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.stages.models import describe_all

    rows = [
        [m["name"], m["kind"], m["architecture"], "yes" if m["present"] else "MISSING", m["path"]]
        for m in describe_all(ctx.db)
    ]
    ctx.result({"view": "table", "header": ["name", "kind", "arch", "present", "path"], "rows": rows})


def _models_remove(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import registry

    registry.remove(ctx.db, a.name)
    return {"removed": a.name}


def _doctor(ctx: Context, a: argparse.Namespace) -> None:
    from engine.stages.doctor import run_doctor

    checks = run_doctor(ctx.db)
    rows = [[name, "ok" if c["ok"] else "no", c["detail"]] for name, c in checks.items()]
    ctx.result({"view": "table", "header": ["check", "ok", "detail"], "rows": rows, "checks": checks})
    if not checks["store"]["ok"]:
        raise UserError(checks["store"]["detail"])


def _runs_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import projects, runs

    pid = projects.get(ctx.db, a.project).id if a.project else None
    rows = [
        [r.id, r.stage, r.status, r.started_at, r.ended_at or "", render.clip(r.error, 40)]
        for r in runs.list_runs(ctx.db, pid)
    ]
    ctx.result(
        {
            "view": "table",
            "header": ["id", "stage", "status", "started", "ended", "error"],
            "rows": rows,
            "empty": "no runs yet",
        }
    )


_GEN_OPTIONS = [
    # (flag, option name, type, help)
    ("--seed", "seed", int, "random seed of the generation (default: a new random one)"),
    ("--seed-set", "seed_set", str, "take demonstrations from this seed set only"),
    ("--k", "k_seeds", int, "demonstrations per brainstorm prompt (default 3)"),
    ("--k-generated", "k_generated", int, "of those, how many are already kept generated tasks (default 0)"),
    ("--tasks-per-prompt", "tasks_per_prompt", int, "new tasks asked of each prompt (default 4)"),
    ("--temperature", "temperature", float, "brainstorm sampling temperature (default 1.0)"),
    ("--top-p", "top_p", float, "brainstorm top-p (default 0.98)"),
    ("--max-tokens", "max_tokens", int, "brainstorm max new tokens (default 768)"),
    ("--response-temperature", "response_temperature", float, "answer temperature (default 0: greedy)"),
    ("--response-top-p", "response_top_p", float, "answer top-p (default 1.0)"),
    ("--response-max-tokens", "response_max_tokens", int, "answer max new tokens (default 512)"),
    ("--passages", "passages", int, "retrieved passages per answer (default 5)"),
    ("--demos", "demos", int, "seed demonstrations per answer prompt (default 5)"),
    ("--rouge-threshold", "rouge_threshold", float, "drop tasks with ROUGE-L above this (default 0.7)"),
    ("--min-words", "min_words", int, "shortest instruction kept, in words (default 4)"),
    ("--max-words", "max_words", int, "longest instruction kept, in words (default 150)"),
    ("--max-input-words", "max_input_words", int, "longest input kept, in words (default 400)"),
    ("--batch-size", "batch_size", int, "prompts per batch on the transformers backend (default 8)"),
    ("--context", "context", int, "context window to use, in tokens (default 4096)"),
    ("--device", "device", str, "auto, cpu or cuda (transformers backend)"),
    ("--max-prompts", "max_prompts", int, "give up brainstorming after this many prompts (default 20 x target)"),
]


def _generate(ctx: Context, a: argparse.Namespace) -> dict[str, Any] | None:
    from engine.stages.generate import open_generation, run_generation

    if a.status:
        _generation_table(ctx)
        return None
    options = {name: getattr(a, name) for _, name, _, _ in _GEN_OPTIONS if getattr(a, name) is not None}
    if a.retrieval is not None:
        options["retrieval"] = a.retrieval
    if a.topic:
        options["topics"] = tuple(a.topic)
    with ctx.exclusive("generation", "generate"):
        gen = open_generation(ctx, options, a.target, a.resume, a.new)
        return run_generation(ctx, gen)


def _generation_table(ctx: Context) -> None:
    from engine.store import generation

    rows: list[list[Any]] = []
    for g in generation.list_for(ctx.db, ctx.need_project()):
        counts = generation.status_counts(ctx.db, g.id)
        rows.append(
            [
                g.id,
                g.phase,
                g.target,
                counts["kept"],
                generation.count_examples(ctx.db, g.id),
                counts["dropped"],
                g.config["model"],
                g.updated_at,
            ]
        )
    ctx.result(
        {
            "view": "table",
            "header": ["id", "phase", "target", "kept", "examples", "dropped", "model", "updated"],
            "rows": rows,
            "empty": "no generations yet (selfspec-tui generate --project P --target N)",
        }
    )


def _examples_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import generation

    project = ctx.need_project()
    if a.dropped:
        last = generation.latest(ctx.db, project)
        gen = a.generation or (last.id if last else 0)
        found = generation.candidates(ctx.db, gen, "dropped") if gen else []
        rows: list[list[Any]] = [
            [f"{c.prompt_idx}.{c.item_idx}", c.reason, render.clip(c.detail, 30), render.clip(c.instruction, 60)]
            for c in found[-a.limit :]
        ]
        ctx.result(
            {
                "view": "table",
                "header": ["task", "reason", "detail", "instruction"],
                "rows": rows,
                "empty": "nothing dropped",
            }
        )
        return
    examples = generation.examples(ctx.db, project, a.generation)[-a.limit :]
    rows = [
        [
            e.id,
            e.generation_id or "",
            e.status,
            render.clip(e.instruction, 50),
            render.clip(e.output, 40),
            len(e.passages),
        ]
        for e in examples
    ]
    ctx.result(
        {
            "view": "table",
            "header": ["id", "gen", "status", "instruction", "response", "passages"],
            "rows": rows,
            "empty": "no examples yet",
        }
    )


def _demo(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.demo import run_demo

    return run_demo(ctx, a.project, reset=a.reset, examples=a.examples, train_epochs=a.train_epochs)


# (handler, needs --project, records a run)
COMMANDS: dict[str, tuple[Any, bool, bool]] = {
    "project create": (_project_create, False, False),
    "project list": (_project_list, False, False),
    "project delete": (_project_delete, False, False),
    "seeds import": (_seeds_import, True, True),
    "seeds validate": (_seeds_validate, False, False),
    "seeds list": (_seeds_list, True, False),
    "corpus import": (_corpus_import, True, True),
    "corpus index": (_corpus_index, True, True),
    "corpus list": (_corpus_list, True, False),
    "corpus search": (_corpus_search, True, False),
    "corpus serve": (_corpus_serve, True, False),
    "models add": (_models_add, False, False),
    "models list": (_models_list, False, False),
    "models remove": (_models_remove, False, False),
    "doctor": (_doctor, False, False),
    "runs list": (_runs_list, False, False),
    "generate": (_generate, True, True),
    "examples list": (_examples_list, True, False),
    "demo": (_demo, False, True),
    **cli_data.COMMANDS,
    **cli_eval.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    from engine.stages.models import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="selfspec-tui", description="Self-specialize a local LLM into a domain expert.")
    p.add_argument(
        "--format",
        choices=["json", "text"],
        default=os.environ.get("SELFSPEC_FORMAT", "json"),
        help="json: JSON-lines events on stdout (for the TUI); text: for people",
    )
    groups = p.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def group(name: str, help_: str) -> argparse._SubParsersAction:
        g = groups.add_parser(name, help=help_)
        return g.add_subparsers(dest="cmd", required=True, metavar="ACTION")

    proj = group("project", "create, list or delete projects")
    c = proj.add_parser("create", help="create a project")
    c.add_argument("name")
    c.add_argument("--domain", required=True)
    c.add_argument("--base-model", default=DEFAULT_MODEL)
    c.add_argument("--embedder", help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    proj.add_parser("list", help="list projects")
    d = proj.add_parser("delete", help="delete a project and its files")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true")

    seeds = group("seeds", "import, validate or list seed tasks")
    i = seeds.add_parser("import", help="import seeds from .jsonl, .csv or qna.yaml (all or nothing)")
    i.add_argument("file")
    i.add_argument("--project", required=True)
    i.add_argument("--set", help="seed set name (default: the file name)")
    v = seeds.add_parser("validate", help="check a seed file without importing it")
    v.add_argument("file")
    ls = seeds.add_parser("list", help="list seeds")
    ls.add_argument("--project", required=True)
    ls.add_argument("--task-type")
    ls.add_argument("--set")
    ls.add_argument("--grep")

    corpus = group("corpus", "import, index or search the domain corpus")
    ci = corpus.add_parser("import", help="import .txt/.md/.jsonl files or folders, embed and index them")
    ci.add_argument("paths", nargs="+")
    ci.add_argument("--project", required=True)
    cx = corpus.add_parser("index", help="embed chunks not yet embedded and bring the index up to date")
    cx.add_argument("--project", required=True)
    cx.add_argument("--rebuild", action="store_true", help="rebuild the index file from the store")
    cl = corpus.add_parser("list", help="list documents")
    cl.add_argument("--project", required=True)
    cs = corpus.add_parser("search", help="top passages for a query")
    cs.add_argument("query")
    cs.add_argument("--project", required=True)
    cs.add_argument("-k", type=int, default=5)
    sv = corpus.add_parser("serve", help="answer JSON search requests on stdin (used by the TUI)")
    sv.add_argument("--project", required=True)

    mods = group("models", "register or list base models")
    ma = mods.add_parser("add", help="register a .gguf file or a Hugging Face folder")
    ma.add_argument("path")
    ma.add_argument("--name")
    mods.add_parser("list", help="list models")
    mr = mods.add_parser("remove", help="forget a registered model (files are kept)")
    mr.add_argument("name")

    groups.add_parser("doctor", help="what this machine can do")
    runs = group("runs", "list runs")
    rl = runs.add_parser("list", help="recent runs")
    rl.add_argument("--project")
    gen = groups.add_parser(
        "generate",
        help="brainstorm domain tasks with the base model and answer them with retrieval (resumable)",
        description="Runs (or resumes) a generation: brainstorm, filter, then answer with retrieved passages. "
        "Without --new, an unfinished generation of the project is resumed.",
    )
    gen.add_argument("--project", required=True)
    gen.add_argument("--target", type=int, help="examples wanted (default 5000; on resume: change the target)")
    gen.add_argument("--resume", type=int, metavar="ID", help="resume this generation")
    gen.add_argument("--new", action="store_true", help="start a new generation even if one is unfinished")
    gen.add_argument("--status", action="store_true", help="list the project's generations and exit")
    gen.add_argument(
        "--no-retrieval",
        dest="retrieval",
        action="store_false",
        default=None,
        help="answer without corpus passages (the paper's non-retrieval variant)",
    )
    gen.add_argument("--topic", action="append", help="a domain topic to cover (repeatable)")
    for flag, name, kind, help_ in _GEN_OPTIONS:
        gen.add_argument(flag, dest=name, type=kind, help=help_)
    ex = group("examples", "list generated examples")
    el = ex.add_parser("list", help="newest examples, or dropped tasks with their reasons")
    el.add_argument("--project", required=True)
    el.add_argument("--generation", type=int)
    el.add_argument("--dropped", action="store_true", help="show dropped tasks and why")
    el.add_argument("--limit", type=int, default=30)
    cli_data.add_parsers(groups, group)
    cli_data.add_train_parsers(groups, group)
    cli_data.add_export_parsers(groups, group)
    cli_data.add_chat_parser(groups)
    cli_eval.add_parsers(group, seeds)
    demo = groups.add_parser("demo", help="build the demo project from the shipped seeds and corpus")
    demo.add_argument("--project", default="demo")
    demo.add_argument("--reset", action="store_true", help="delete and rebuild the demo project")
    demo.add_argument("--examples", type=int, default=6, help="examples to generate with the base model (default 6)")
    demo.add_argument(
        "--train-epochs", type=int, default=1, help="epochs of the demo adapter's LoRA training (0: skip; default 1)"
    )
    return p


def _quiet_libraries() -> None:
    """Offline, and library chatter (progress bars, warnings) to the log file, not the terminal."""
    import logging

    from engine import paths

    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TQDM_DISABLE": "1",  # transformers' GGUF loader draws its own progress bars
    }.items():
        os.environ.setdefault(key, value)
    try:
        log_dir = paths.home() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for item in (log_dir, *log_dir.iterdir()):  # logs hold prompts and data: owner only
            paths.make_private(item)
        handler: logging.Handler = logging.FileHandler(log_dir / "engine.log", encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.captureWarnings(True)


def _bad_argument(args: argparse.Namespace) -> str | None:
    """An argument that cannot be stored or shown (bytes that are not UTF-8 arrive as surrogates)."""
    from engine.infile import text_problem

    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and text_problem(item):
                return f"argument --{name.replace('_', '-')} {ascii(item)}: {text_problem(item)}"
    return None


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # text that is not valid Unicode is shown escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    key = f"{args.group} {args.cmd}" if getattr(args, "cmd", None) else args.group
    handler, needs_project, record = COMMANDS[key]
    emit = json_sink() if args.format == "json" else render.text_sink()
    bad = _bad_argument(args)
    if bad:
        emit({"event": "failed", "stage": key, "run_id": None, "error": bad, "kind": "input"})
        return runner.EXIT_USER
    project = getattr(args, "project", None) if needs_project else None
    config = {k: v for k, v in vars(args).items() if k not in ("format", "group", "cmd")}
    return runner.execute(emit, key, lambda ctx: handler(ctx, args), project, config, record)
