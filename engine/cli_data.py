"""CLI commands for review decisions and datasets: `review ...` and `dataset ...`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.stages.context import Context

CLI_SESSION = "cli"


def _filter(a: argparse.Namespace) -> Any:
    from engine.store.review import Filter

    return Filter(
        status=a.status or "",
        task_type=a.task_type or "",
        reason=a.reason or "",
        flagged=a.flagged,
        generation=a.generation,
        search=a.search or "",
        ids=tuple(a.id or ()),
    )


def _needs_selection(a: argparse.Namespace) -> None:
    chosen = [a.id, a.status, a.task_type, a.reason, a.flagged, a.generation is not None, a.search, a.all]
    if not any(chosen):
        raise UserError(
            "say which examples: --id N..., a filter (--status, --task-type, --reason, --flagged,"
            " --generation, --search) or --all"
        )


def _review_stats(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import review

    s = review.stats(ctx.db, ctx.need_project())
    header = ["", *review.STATUSES, "total"]
    rows: list[list[Any]] = [["all", *s["status"].values(), sum(s["status"].values())]]
    for kind, label in (("task_type", "type"), ("generation", "generation")):
        for key, per in s[kind].items():
            name = "imported" if kind == "generation" and key == "0" else key
            rows.append([f"{label} {name}", *per.values(), sum(per.values())])
    ctx.result({"view": "table", "header": header, "rows": rows, "empty": "no examples"})
    if s["flag"]:
        ctx.result({"view": "table", "header": ["flag / reason", "examples"], "rows": list(s["flag"].items())})


def _review_decide(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import review

    _needs_selection(a)
    project = ctx.need_project()
    f = _filter(a)
    if a.cmd == "flag":
        done = review.set_flag(ctx.db, project, f, a.reason_text or "", CLI_SESSION)
    else:
        status = {"accept": "accepted", "reject": "rejected", "reset": "pending"}[a.cmd]
        done = review.set_status(ctx.db, project, f, status, CLI_SESSION)
    if a.id:
        missing = sorted(set(a.id) - {i for i, _ in review.ids(ctx.db, project, review.Filter(ids=tuple(a.id)))})
        if missing:
            ctx.emit({"event": "log", "level": "warning", "message": f"no such example ids: {missing[:20]}"})
    return {"changed": len(done.changed), "action": done.action_id or "-", "counts": review.counts(ctx.db, project)}


def _review_undo(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import review

    project = ctx.need_project()
    done = review.undo(ctx.db, project, a.session)
    if done is None:
        raise UserError(f"nothing to undo for session {a.session!r}")
    return {
        "undone": done.kind,
        "reverted": len(done.reverted),
        "left_alone": f"{len(done.conflicts)} changed since" if done.conflicts else 0,
        "counts": review.counts(ctx.db, project),
    }


def _review_edit(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import review

    project = ctx.need_project()
    current = review.get(ctx.db, a.id[0])
    fields = {
        "instruction": current.instruction,
        "input": current.input,
        "output": current.output,
        "task_type": current.task_type,
    }
    for name in fields:
        value = getattr(a, f"new_{name}")
        if value is not None:
            fields[name] = value
    done = review.edit(ctx.db, project, current.id, fields, CLI_SESSION)
    if done.action_id is None:
        return {"example": current.id, "changed": 0}
    return {"example": current.id, "version": review.get(ctx.db, current.id).version}


def _dataset_export(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine import paths
    from engine.stages import dataset
    from engine.store.examples import training_set

    project = ctx.need_project()
    if a.out:
        out = paths.check_output(Path(a.out), ctx.db, "dataset export")
    else:
        folder = paths.project_dir(project.name) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{project.name}-{a.dataset_format}{dataset.default_suffix(a.dataset_format)}"
        paths.check_output(out, ctx.db, "dataset export")
    count = dataset.export(training_set(ctx.db, project, a.include_pending), a.dataset_format, out, a.system or "")
    if count == 0:
        ctx.emit(
            {
                "event": "log",
                "level": "warning",
                "message": "no approved examples: the file is empty (review some, or pass --include-pending)",
            }
        )
    return {
        "exported": count,
        "format": a.dataset_format,
        "file": str(out),
        "statuses": "accepted, edited" + (", pending" if a.include_pending else ""),
    }


def _dataset_import(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages import dataset
    from engine.store.examples import add_imported

    path = Path(a.file).expanduser()
    fmt, drafts = dataset.read_dataset(path, a.dataset_format)
    added, present = add_imported(ctx.db, ctx.need_project(), drafts, a.as_status, str(path))
    return {"format": fmt, "added": added, "already_present": present, "status": a.as_status}


def add_parsers(groups: argparse._SubParsersAction, group: Any) -> None:
    from engine.stages.dataset import FORMATS
    from engine.store.review import STATUSES

    rev = group("review", "review decisions from scripts: stats, accept, reject, flag, edit, undo")
    st = rev.add_parser("stats", help="examples per status, task type, generation and flag")
    st.add_argument("--project", required=True)
    for name, help_ in (
        ("accept", "accept the selected examples (edited ones stay edited)"),
        ("reject", "reject the selected examples"),
        ("reset", "put the selected examples back to pending"),
        ("flag", "flag the selected examples with --reason-text (empty unflags)"),
    ):
        p = rev.add_parser(name, help=help_)
        p.add_argument("--project", required=True)
        p.add_argument("--id", type=int, nargs="+", help="example ids")
        p.add_argument("--status", choices=STATUSES)
        p.add_argument("--task-type")
        p.add_argument("--reason", help="flag / reason contains this text")
        p.add_argument("--flagged", action="store_true", help="only flagged examples")
        p.add_argument("--generation", type=int, help="only this generation (0: imported examples)")
        p.add_argument("--search", help="full-text search over instruction, input and response")
        p.add_argument("--all", action="store_true", help="every example of the project")
        if name == "flag":
            p.add_argument("--reason-text", required=True, help="why (an empty string removes the flag)")
    ed = rev.add_parser("edit", help="edit one example (the original is kept as version 0)")
    ed.add_argument("--project", required=True)
    ed.add_argument("--id", type=int, nargs=1, required=True)
    for name in ("instruction", "input", "output", "task_type"):
        ed.add_argument(f"--{name.replace('_', '-')}", dest=f"new_{name}")
    un = rev.add_parser("undo", help="undo the newest review action of a session (default: the CLI's)")
    un.add_argument("--project", required=True)
    un.add_argument("--session", default=CLI_SESSION)

    ds = group("dataset", "export the training set or import examples")
    ex = ds.add_parser("export", help="write the approved examples (accepted + edited) to a file")
    ex.add_argument("--project", required=True)
    ex.add_argument(
        "--format",
        dest="dataset_format",
        choices=FORMATS,
        default="alpaca",
        help="alpaca/sharegpt/openai JSONL, or parquet (load with datasets.load_dataset('parquet', ...))",
    )
    ex.add_argument("--out", help="file to write (default: the project's exports folder)")
    ex.add_argument("--include-pending", action="store_true", help="also examples nobody has reviewed yet")
    ex.add_argument("--system", help="system message for the chat formats")
    im = ds.add_parser("import", help="add examples from a dataset file (validated; all or nothing)")
    im.add_argument("file")
    im.add_argument("--project", required=True)
    im.add_argument("--format", dest="dataset_format", choices=("auto", *FORMATS), default="auto")
    im.add_argument(
        "--as",
        dest="as_status",
        choices=("pending", "accepted", "rejected"),
        default="pending",
        help="status the imported examples get (default pending)",
    )


# (handler, needs --project, records a run)
COMMANDS: dict[str, tuple[Any, bool, bool]] = {
    "review stats": (_review_stats, True, False),
    "review accept": (_review_decide, True, False),
    "review reject": (_review_decide, True, False),
    "review reset": (_review_decide, True, False),
    "review flag": (_review_decide, True, False),
    "review edit": (_review_edit, True, False),
    "review undo": (_review_undo, True, False),
    "dataset export": (_dataset_export, True, True),
    "dataset import": (_dataset_import, True, True),
}


def _train(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.train import open_training, run_training
    from engine.stages.train_config import OPTIONS

    options = {name: getattr(a, name) for _, name, _, _ in OPTIONS if getattr(a, name) is not None}
    if a.include_pending:
        options["include_pending"] = True
    with ctx.exclusive("training", "train"):
        adapter = open_training(ctx, options, a.name, a.resume, a.new)
        return run_training(ctx, adapter)


def _adapters_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import adapters

    rows = []
    for ad in adapters.list_for(ctx.db, ctx.need_project()):
        m = ad.metrics
        rows.append(
            [
                ("* " if ad.is_current else "  ") + ad.name,
                ad.status,
                ad.examples,
                m.get("steps", ""),
                m.get("final_loss", ""),
                m.get("val_loss", ""),
                m.get("tokens_per_s", ""),
                ad.updated_at,
            ]
        )
    ctx.result(
        {
            "view": "table",
            "header": ["adapter (* current)", "status", "examples", "steps", "loss", "val loss", "tok/s", "updated"],
            "rows": rows,
            "empty": "no adapters yet (selfspec-tui train --project P)",
        }
    )


def _adapters_use(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import adapters

    project = ctx.need_project()
    ad = adapters.by_name(ctx.db, project, a.name)
    if ad.status != "done":
        raise UserError(f"adapter {a.name!r} is {ad.status}, not trained yet: run `train` to finish it")
    adapters.set_current(ctx.db, project, ad.id)
    return {"current": ad.name}


def add_train_parsers(groups: argparse._SubParsersAction, group: Any) -> None:
    from engine.stages.train_config import OPTIONS

    tr = groups.add_parser(
        "train",
        help="LoRA/QLoRA-tune the base model on the approved examples (resumable)",
        description="Trains (or resumes) an adapter. Without --new, the project's unfinished adapter resumes"
        " from its newest checkpoint.",
    )
    tr.add_argument("--project", required=True)
    tr.add_argument("--name", help="adapter name (default expert-N)")
    tr.add_argument("--resume", metavar="NAME", help="resume this adapter")
    tr.add_argument("--new", action="store_true", help="train a new adapter even if one is unfinished")
    tr.add_argument("--include-pending", action="store_true", help="also train on examples not reviewed yet")
    for flag, name, kind, help_ in OPTIONS:
        tr.add_argument(flag, dest=name, type=kind, help=help_)
    ad = group("adapters", "list the project's adapters (experts) or choose the current one")
    al = ad.add_parser("list", help="adapters with status and metrics")
    al.add_argument("--project", required=True)
    au = ad.add_parser("use", help="make this adapter the project's current expert")
    au.add_argument("name")
    au.add_argument("--project", required=True)


COMMANDS.update(
    {
        "train": (_train, True, True),
        "adapters list": (_adapters_list, True, False),
        "adapters use": (_adapters_use, True, False),
    }
)


def _export(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.export import run_export

    quants = [q.strip() for q in a.quant.split(",") if q.strip()] if a.quant else []
    with ctx.exclusive("export", "export"):
        return run_export(ctx, a.adapter, quants, lora=not a.no_lora, parity_check=not a.no_parity)


def _tools_setup(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages import converter

    return converter.setup(Path(a.sdist) if a.sdist else None)


def add_export_parsers(groups: argparse._SubParsersAction, group: Any) -> None:
    ex = groups.add_parser(
        "export",
        help="merge the adapter into its base, convert to GGUF, quantize, check parity (resumable)",
    )
    ex.add_argument("--project", required=True)
    ex.add_argument("--adapter", help="adapter name (default: the current one)")
    ex.add_argument("--quant", default="q8_0,q4_k_m", help="comma-separated: q8_0, q4_k_m, q4_0 (default q8_0,q4_k_m)")
    ex.add_argument("--no-lora", action="store_true", help="skip the LoRA-only GGUF")
    ex.add_argument("--no-parity", action="store_true", help="skip the parity check")
    tools = group("tools", "one-time setup of external tools")
    ts = tools.add_parser(
        "setup", help="fetch llama.cpp's GGUF converters matching llama-cpp-python (needs the registry)"
    )
    ts.add_argument("--sdist", help="use this llama-cpp-python source archive instead of downloading it")


COMMANDS.update(
    {
        "export": (_export, True, True),
        "tools setup": (_tools_setup, False, False),
    }
)


def _chat(ctx: Context, a: argparse.Namespace) -> None:
    from engine.stages import chat
    from engine.store import chats

    project = ctx.need_project()
    if a.serve:
        chat.serve(ctx)
        return
    if a.list:
        rows = [
            [c.spec, c.label, c.path.name + (f" + {c.lora.name}" if c.lora else ""), c.prompt_format]
            for c in chat.available(ctx, project)
        ]
        ctx.result(
            {
                "view": "table",
                "header": ["model", "what", "file", "prompt"],
                "rows": rows,
                "empty": "no GGUF model to chat with (export an expert: selfspec-tui export)",
            }
        )
        convs = [[c.id, ", ".join(c.models), c.title, c.updated_at] for c in chats.list_for(ctx.db, project)]
        ctx.result(
            {
                "view": "table",
                "header": ["conversation", "models", "first message", "updated"],
                "rows": convs,
                "empty": "no conversations yet",
            }
        )
        return
    sampling = chat.check_sampling(
        {"temperature": a.temperature, "top_p": a.top_p, "max_tokens": a.max_tokens, "stop": a.stop or []}
    )
    chat.repl(ctx, a.model or ["base"], a.system or "", sampling, a.conversation)


def add_chat_parser(groups: argparse._SubParsersAction) -> None:
    ch = groups.add_parser("chat", help="chat in the terminal with the base model, an expert, or both side by side")
    ch.add_argument("--project", required=True)
    ch.add_argument("--model", action="append", help="base, EXPERT, EXPERT:QUANT or base+EXPERT (twice: side by side)")
    ch.add_argument("--system", help="system message")
    ch.add_argument("--temperature", type=float, default=0.7)
    ch.add_argument("--top-p", type=float, default=0.95)
    ch.add_argument("--max-tokens", type=int, default=256)
    ch.add_argument("--stop", action="append", metavar="TEXT", help="end a reply at this text (repeatable)")
    ch.add_argument("--conversation", type=int, help="reopen a stored conversation")
    ch.add_argument("--list", action="store_true", help="list the models and the stored conversations")
    ch.add_argument("--serve", action="store_true", help="JSON requests on stdin (used by the TUI)")


COMMANDS.update({"chat": (_chat, True, False)})
