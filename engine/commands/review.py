"""review stats|accept|reject|reset|flag|edit|undo|similar: review decisions from scripts."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from engine.errors import UserError
from engine.spec.kinds import ExampleStatus
from engine.stages.context import Context

CLI_SESSION = "cli"
_STATUS = {"accept": ExampleStatus.ACCEPTED, "reject": ExampleStatus.REJECTED, "reset": ExampleStatus.PENDING}


def _filter(a: Namespace) -> Any:
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


def _needs_selection(a: Namespace) -> None:
    chosen = [a.id, a.status, a.task_type, a.reason, a.flagged, a.generation is not None, a.search, a.all]
    if not any(chosen):
        raise UserError(
            "say which examples: --id N..., a filter (--status, --task-type, --reason, --flagged,"
            " --generation, --search) or --all"
        )


def stats(ctx: Context, a: Namespace) -> None:
    from engine.store import review

    s = review.stats(ctx.db, ctx.need_project())
    header = ["", *review.STATUSES, "total"]
    rows: list[list[Any]] = [["all", *s["status"].values(), sum(s["status"].values())]]
    for kind, label in (("task_type", "type"), ("generation", "generation")):
        for key, per in s[kind].items():
            name = "imported" if kind == "generation" and key == "0" else key
            rows.append([f"{label} {name}", *per.values(), sum(per.values())])
    ctx.table(header, rows, "no examples")
    if s["flag"]:
        ctx.table(["flag / reason", "examples"], list(s["flag"].items()))


def decide(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import review

    _needs_selection(a)
    project = ctx.need_project()
    f = _filter(a)
    action = a.cmd
    if action == "flag":
        done = review.set_flag(ctx.db, project, f, a.reason_text or "", CLI_SESSION)
    else:
        done = review.set_status(ctx.db, project, f, _STATUS[action], CLI_SESSION)
    if a.id:
        missing = sorted(set(a.id) - {i for i, _ in review.ids(ctx.db, project, review.Filter(ids=tuple(a.id)))})
        if missing:
            ctx.log(f"no such example ids: {missing[:20]}", "warning")
    return {"changed": len(done.changed), "action": done.action_id or "-", "counts": review.counts(ctx.db, project)}


def undo(ctx: Context, a: Namespace) -> dict[str, Any]:
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


def edit(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import review

    project = ctx.need_project()
    current = review.get(ctx.db, a.id[0])
    fields = {name: getattr(current, name) for name in ("instruction", "input", "output", "task_type")}
    for name in fields:
        value = getattr(a, f"new_{name}")
        if value is not None:
            fields[name] = value
    done = review.edit(ctx.db, project, current.id, fields, CLI_SESSION)
    if done.action_id is None:
        return {"example": current.id, "changed": 0}
    return {"example": current.id, "version": review.get(ctx.db, current.id).version}


def similar(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages import similar as similar_

    return similar_.run(ctx, a.id, a.k)
