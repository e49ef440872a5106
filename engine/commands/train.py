"""train (run or resume), adapters list|use."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from engine.errors import UserError
from engine.spec.commands import stage
from engine.spec.kinds import JobStatus
from engine.spec.stage import given
from engine.stages.context import Context


def run(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.train import open_training, run_training

    options = given(stage("train").knobs, a)
    name = options.pop("name", None)
    processes = options.pop("processes", None)
    processes = 1 if processes is None else processes
    strategy = options.pop("strategy", None) or "ddp"
    if processes != 1:  # before anything is written
        from engine.stages.train_launch import check_processes

        check_processes(processes, str(options.get("device") or "auto"))
    adapter = open_training(ctx, options, name, a.resume, a.new)
    return run_training(ctx, adapter, processes, strategy)


def adapters(ctx: Context, a: Namespace) -> None:
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
    ctx.table(
        ["adapter (* current)", "status", "examples", "steps", "loss", "val loss", "tok/s", "updated"],
        rows,
        "no adapters yet (selfspec-tui train --project P)",
    )


def use(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import adapters

    project = ctx.need_project()
    ad = adapters.by_name(ctx.db, project, a.name)
    if ad.status != JobStatus.DONE:
        raise UserError(f"adapter {a.name!r} is {ad.status}, not trained yet: run `train` to finish it")
    adapters.set_current(ctx.db, project, ad.id)
    return {"current": ad.name}
