"""models add|list|remove, doctor."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.stages.context import Context


def add(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.models import register

    m = register(ctx.db, Path(a.path), a.name)
    return {"registered": m.name, "kind": m.kind, "architecture": m.architecture, "path": m.path}


def list_(ctx: Context, a: Namespace) -> None:
    from engine.stages.models import describe_all

    rows = [
        [m["name"], m["kind"], m["architecture"], "yes" if m["present"] else "MISSING", m["path"]]
        for m in describe_all(ctx.db)
    ]
    ctx.table(["name", "kind", "arch", "present", "path"], rows)


def remove(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import registry

    registry.remove(ctx.db, a.name)
    return {"removed": a.name}


def doctor(ctx: Context, a: Namespace) -> None:
    from engine.stages.doctor import run_doctor

    checks = run_doctor(ctx.db)
    rows = [[name, "ok" if c["ok"] else "no", c["detail"]] for name, c in checks.items()]
    ctx.table(["check", "ok", "detail"], rows, checks=checks)
    if not checks["store"]["ok"]:
        raise UserError(checks["store"]["detail"])
