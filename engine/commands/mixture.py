"""mixture create | train | list | delete | chat | export | eval."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from engine.spec.commands import stage
from engine.spec.stage import given
from engine.stages.context import Context


def create(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.mixture import create

    return create(ctx, a.name, list(a.expert))


def train(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.mixture import open_router_training, train_router
    from engine.store import locks, mixtures, projects

    m = mixtures.by_name(ctx.db, a.name)
    owner = projects.get(ctx.db, m.experts[0]["project"])  # the lock lives with the first expert's project
    with locks.held(ctx.db, owner.id, f"mixture {m.name}", "mixture train"):
        m, cfg = open_router_training(ctx, a.name, given(stage("mixture train").knobs, a))
        return train_router(ctx, m, cfg)


def list_(ctx: Context, a: Namespace) -> None:
    from engine.store import mixtures

    rows = []
    for m in mixtures.list_all(ctx.db):
        routing = m.metrics.get("routing", {})
        shown = "; ".join(f"{d}: {m.share_text(s)}" for d, s in routing.items())
        rows.append([m.name, m.status, ", ".join(m.expert_names()), m.examples, m.metrics.get("final_loss", ""), shown])
    ctx.table(
        ["mixture", "status", "experts", "examples", "loss", "routing per domain"],
        rows,
        "no mixtures yet (selfspec-tui mixture create NAME --expert P1 --expert P2)",
    )


def delete(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.errors import UserError
    from engine.store import mixtures

    if not a.yes:
        raise UserError(f"deleting mixture {a.name!r} removes its router and exports: pass --yes to confirm")
    m = mixtures.delete(ctx.db, a.name)
    return {"deleted": m.name, "experts kept": ", ".join(m.expert_names())}


def _held(ctx: Context, name: str, what: str) -> Any:
    """The mixture's lock for one kind of run (export, eval), so `mixture delete` waits for it."""
    from engine.store import locks, mixtures, projects

    m = mixtures.by_name(ctx.db, name)
    owner = projects.get(ctx.db, m.experts[0]["project"])
    return locks.held(ctx.db, owner.id, f"mixture {m.name} {what}", f"mixture {what}")


def chat(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.mixture import ask

    if a.max_tokens < 1:
        from engine.errors import UserError

        raise UserError("--max-tokens must be at least 1")
    if a.gguf:
        from engine.stages.mixture_gguf import ask_gguf

        return ask_gguf(ctx, a.name, a.question, a.max_tokens)
    return ask(ctx, a.name, a.question, a.routing, a.max_tokens)


def export(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.mixture_gguf import export_mixture

    with _held(ctx, a.name, "export"):
        return export_mixture(ctx, a.name)


def eval(ctx: Context, a: Namespace) -> dict[str, Any]:  # noqa: A001 (the command's name)
    from engine.errors import UserError
    from engine.stages.mixture_eval import evaluate_mixture

    if a.limit is not None and a.limit < 1:
        raise UserError("--limit must be at least 1")
    with _held(ctx, a.name, "eval"):
        return evaluate_mixture(ctx, a.name, a.limit, a.shots, a.max_tokens, a.new)
