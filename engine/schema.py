"""Field rules for seed tasks, shared by every importer and by the TUI's seed editor.

Pure Python on purpose: the front end imports this module, so it must stay light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.errors import Problem
from engine.infile import text_problem

SEED_FIELDS = ("instruction", "input", "output", "task_type")
REQUIRED = ("instruction", "output")
MAX_INSTRUCTION_CHARS = 2_000
MAX_TEXT_CHARS = 20_000
_TASK_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULT_TASK_TYPE = "general"


@dataclass(frozen=True)
class SeedDraft:
    """A seed task that passed validation and is ready to store."""

    instruction: str
    input: str
    output: str
    task_type: str

    def key(self) -> tuple[str, str]:
        return (self.instruction, self.input)


def check_seed(record: Any, source: str, line: int | None) -> tuple[SeedDraft | None, list[Problem]]:
    """Validate one raw record; return the draft or every problem found in it."""
    problems: list[Problem] = []

    def bad(fld: str | None, msg: str) -> None:
        problems.append(Problem(source, line, fld, msg))

    if not isinstance(record, dict):
        bad(None, f"expected an object with fields {', '.join(SEED_FIELDS)}, got {type(record).__name__}")
        return None, problems
    for key in record:
        if key not in SEED_FIELDS:
            bad(str(key), f"unknown field (allowed: {', '.join(SEED_FIELDS)})")
    values: dict[str, str] = {}
    for fld in SEED_FIELDS:
        value = record.get(fld)
        if value is None:
            if fld in REQUIRED:
                bad(fld, "missing")
            values[fld] = ""
            continue
        why = text_problem(value)
        if why:
            bad(fld, why)
            continue
        values[fld] = value.strip()
    for fld in REQUIRED:
        if fld in record and isinstance(record.get(fld), str) and not values.get(fld):
            bad(fld, "is empty")
    if len(values.get("instruction", "")) > MAX_INSTRUCTION_CHARS:
        bad("instruction", f"longer than {MAX_INSTRUCTION_CHARS} characters")
    for fld in ("input", "output"):
        if len(values.get(fld, "")) > MAX_TEXT_CHARS:
            bad(fld, f"longer than {MAX_TEXT_CHARS} characters")
    task_type = values.get("task_type") or DEFAULT_TASK_TYPE
    if not _TASK_TYPE_RE.match(task_type):
        bad("task_type", f"{task_type!r} is not a task type: use lowercase letters, digits and '_'")
    if problems:
        return None, problems
    return (
        SeedDraft(values["instruction"], values.get("input", ""), values["output"], task_type),
        [],
    )
