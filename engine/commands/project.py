"""project create|list|delete, runs list, demo."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from engine import paths, render
from engine.errors import UserError
from engine.stages.context import Context


def create(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages import models
    from engine.store import projects

    paths.validate_project_name(a.name)
    models.resolve(ctx.db, a.base_model)
    settings = {"embedder": models.check_embedder(a.embedder)} if a.embedder else {}
    p = projects.create(ctx.db, a.name, a.domain, a.base_model, settings)
    return {"created": p.name, "domain": p.domain, "base_model": p.base_model}


def list_(ctx: Context, a: Namespace) -> None:
    from engine.store import projects

    rows = []
    for p in projects.list_all(ctx.db):
        s = projects.summary(ctx.db, p)
        rows.append([p.name, p.domain, p.base_model, s["seeds"], s["documents"], s["chunks"]])
    ctx.table(
        ["name", "domain", "base model", "seeds", "docs", "chunks"],
        rows,
        "no projects yet (selfspec-tui project create NAME --domain D)",
    )


def delete(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import projects

    if not a.yes:
        raise UserError(f"deleting {a.name!r} removes its seeds, corpus and runs: pass --yes to confirm")
    projects.delete(ctx.db, a.name)
    return {"deleted": a.name}


def runs(ctx: Context, a: Namespace) -> None:
    from engine.store import projects, runs

    pid = projects.get(ctx.db, a.project).id if a.project else None
    rows = [
        [r.id, r.stage, r.status, r.started_at, r.ended_at or "", render.clip(r.error, 40)]
        for r in runs.list_runs(ctx.db, pid)
    ]
    ctx.table(["id", "stage", "status", "started", "ended", "error"], rows, "no runs yet")


def demo(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.demo import run_demo

    return run_demo(ctx, a.project, reset=a.reset, examples=a.examples, train_epochs=a.train_epochs)
