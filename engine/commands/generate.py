"""generate (run, resume, --status) and examples list."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from engine import render
from engine.spec.commands import stage
from engine.spec.stage import given
from engine.stages.context import Context


def run(ctx: Context, a: Namespace) -> dict[str, Any] | None:
    from engine.stages.generate import open_generation, run_generation

    if a.status:
        _generation_table(ctx)
        return None
    options = given(stage("generate").knobs, a)
    target = options.pop("target", None)
    gen = open_generation(ctx, options, target, a.resume, a.new)
    return run_generation(ctx, gen)


def _generation_table(ctx: Context) -> None:
    from engine.store import generation

    rows: list[list[Any]] = []
    for g in generation.list_for(ctx.db, ctx.need_project()):
        counts = generation.status_counts(ctx.db, g.id)
        made = generation.count_examples(ctx.db, g.id)
        rows.append([g.id, g.phase, g.target, counts["kept"], made, counts["dropped"], g.config["model"], g.updated_at])
    ctx.table(
        ["id", "phase", "target", "kept", "examples", "dropped", "model", "updated"],
        rows,
        "no generations yet (selfspec-tui generate --project P --target N)",
    )


def examples(ctx: Context, a: Namespace) -> None:
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
        ctx.table(["task", "reason", "detail", "instruction"], rows, "nothing dropped")
        return
    rows = [
        [
            e.id,
            e.generation_id or "",
            e.status,
            render.clip(e.instruction, 50),
            render.clip(e.output, 40),
            len(e.passages),
        ]
        for e in generation.examples(ctx.db, project, a.generation)[-a.limit :]
    ]
    ctx.table(["id", "gen", "status", "instruction", "response", "passages"], rows, "no examples yet")
