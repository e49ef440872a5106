"""dataset export|import."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from engine.stages.context import Context


def export(ctx: Context, a: Namespace) -> dict[str, Any]:
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
        ctx.log("no approved examples: the file is empty (review some, or pass --include-pending)", "warning")
    return {
        "exported": count,
        "format": a.dataset_format,
        "file": str(out),
        "statuses": "accepted, edited" + (", pending" if a.include_pending else ""),
    }


def import_(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages import dataset
    from engine.store.examples import add_imported

    path = Path(a.file).expanduser()
    fmt, drafts = dataset.read_dataset(path, a.dataset_format)
    added, present = add_imported(ctx.db, ctx.need_project(), drafts, a.as_status, str(path))
    return {"format": fmt, "added": added, "already_present": present, "status": a.as_status}
