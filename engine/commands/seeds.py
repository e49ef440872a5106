"""seeds import|validate|list (seeds hold-out is with evaluation)."""

from __future__ import annotations

from argparse import Namespace
from collections import Counter
from pathlib import Path
from typing import Any

from engine import render
from engine.stages.context import Context


def import_(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.seeds_io import read_seed_file
    from engine.store import seeds

    path = Path(a.file)
    drafts = read_seed_file(path)
    set_name = a.set if a.set is not None else seeds.default_set_name(path.stem)
    the_set, added, dup = seeds.import_drafts(ctx.db, ctx.need_project(), set_name, drafts, str(path))
    return {"seed_set": the_set.name, "added": added, "already_present": dup, "set_size": the_set.count}


def validate(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.seeds_io import read_seed_file

    drafts = read_seed_file(Path(a.file))
    types = Counter(d.task_type for d in drafts)
    return {"file": a.file, "valid_tasks": len(drafts), "task_types": dict(types.most_common())}


def list_(ctx: Context, a: Namespace) -> None:
    from engine.store import seeds

    found = seeds.list_seeds(ctx.db, ctx.need_project(), a.grep or "", a.task_type or "", a.set or "")
    rows = [[s.id, s.set_name, s.task_type, render.clip(s.instruction, 70)] for s in found]
    ctx.table(["id", "set", "task type", "instruction"], rows, "no seeds match")
