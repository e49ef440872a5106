"""Turns free model output into tasks. It never raises: anything it cannot read becomes a reason.

Accepted shapes: "Task N" headers (also "### Task N", "**Task 5:**", "Example 5"), numbered
lists ("5. ..."), fields on their own lines ("Instruction:", "Input:", "Type:") or inline with the
header, any field missing or repeated, output fields ignored, and a last task cut off by the token
limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^[\s#*_>-]*(?:task|example|new task)\s*#?\s*(\d{1,4})\s*[:.)\-]?[\s*_]*(.*)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+(.*)$")
_FIELD = re.compile(
    r"^[\s*_>-]*(instructions?|question|task type|type|category|inputs?|context|passage|output|answer|response"
    r"|solution)\s*[*_]*\s*:[*_]*\s?(.*)$",
    re.IGNORECASE,
)
_CANON = {
    "instruction": "instruction",
    "instructions": "instruction",
    "question": "instruction",
    "task type": "type",
    "type": "type",
    "category": "type",
    "input": "input",
    "inputs": "input",
    "context": "input",
    "passage": "input",
}
_EMPTY_INPUTS = {"", "<noinput>", "noinput", "<no input>", "no input", "none", "n/a", "na", "-", "null", "nil", "empty"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class ParsedTask:
    instruction: str
    input: str
    task_type: str
    problem: str = ""
    detail: str = ""


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", text)


def _blocks(text: str) -> list[str]:
    """Split at task headers; without any, at numbered list items; else the whole text is one block."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if not starts:
        starts = [i for i, line in enumerate(lines) if _NUMBERED.match(line) and not _FIELD.match(line)]
        if starts:
            lines = [_NUMBERED.sub(r"\2", line) if i in starts else line for i, line in enumerate(lines)]
    else:
        lines = [_HEADER.sub(r"\2", line) if i in starts else line for i, line in enumerate(lines)]
    if not starts:
        return [text] if text.strip() else []
    bounds = starts + [len(lines)]
    head = "\n".join(lines[: starts[0]]).strip()
    out = [head] if head and _FIELD.search(head) else []
    out += ["\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:])]
    return out


def task_starts(text: str) -> list[int]:
    """Character offsets of the lines where a task begins, split as parse_tasks splits them."""
    lines = _clean(text).split("\n")
    marks = [bool(_HEADER.match(line)) for line in lines]
    if not any(marks):
        marks = [bool(_NUMBERED.match(line)) and not _FIELD.match(line) for line in lines]
    offsets, at = [], 0
    for line, mark in zip(lines, marks):
        if mark:
            offsets.append(at)
        at += len(line) + 1
    return offsets


def _fields(block: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current = "preamble"
    ignored = False
    for line in block.split("\n"):
        m = _FIELD.match(line)
        if m:
            name = m.group(1).lower()
            ignored = name not in _CANON
            current = _CANON.get(name, "output")
            if current in found and not ignored:  # a repeated field starts a new value; keep the first
                ignored = True
            if not ignored:
                found[current] = [m.group(2)]
            continue
        if not ignored:
            found.setdefault(current, []).append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}


def _type(raw: str) -> str:
    t = re.sub(r"[^a-z0-9]+", "_", raw.split("\n")[0].lower()).strip("_")
    return t[:40]


def _one(block: str) -> ParsedTask:
    f = _fields(block)
    instruction = f.get("instruction", "")
    if not instruction:  # "Task 5: Explain ..." or a bare numbered item
        instruction = f.get("preamble", "")
    instruction = " ".join(instruction.split())
    raw_input = f.get("input", "").strip()
    input_text = "" if raw_input.lower().strip(" .") in _EMPTY_INPUTS else raw_input
    task_type = _type(f.get("type", ""))
    if not instruction:
        return ParsedTask("", input_text, task_type, "no_instruction", " ".join(block.split())[:120])
    return ParsedTask(instruction, input_text, task_type)


def parse_tasks(text: str, truncated: bool = False) -> list[ParsedTask]:
    """Every task-like block in `text`, in order; problems are marked, never raised."""
    try:
        blocks = _blocks(_clean(text or ""))
        tasks = [_one(b) for b in blocks]
    except Exception as exc:  # a parser bug must not stop a long run; the output is kept for review
        return [ParsedTask("", "", "", "unparseable", f"{type(exc).__name__}: {exc}")]
    tasks = [t for t in tasks if t.instruction or t.input or t.problem != "no_instruction" or t.detail]
    if not tasks:
        return [ParsedTask("", "", "", "no_task_in_output", " ".join((text or "").split())[:120])]
    seen: set[tuple[str, str]] = set()
    out = []
    for i, t in enumerate(tasks):
        if truncated and i == len(tasks) - 1:
            t = ParsedTask(t.instruction, t.input, t.task_type, "truncated", "cut off by the token limit")
        elif not t.problem:
            key = (t.instruction.lower(), " ".join(t.input.split()).lower())
            if key in seen:
                t = ParsedTask(t.instruction, t.input, t.task_type, "repeated_in_output", "")
            seen.add(key)
        out.append(t)
    return out
