"""Training data in and out: Alpaca, ShareGPT and OpenAI-messages JSONL, and Parquet for `datasets`.

Export writes the approved examples (optionally also pending ones) to a `.partial` file and
renames it into place, so a half-written file never looks finished. Import validates every
record (file, line, field) before storing anything, then stores all of it in one transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine import infile, paths
from engine.errors import Problem, UserError, ValidationError
from engine.schema import SeedDraft, check_seed
from engine.spec import prompts
from engine.store.records import Example

FORMATS = ("alpaca", "sharegpt", "openai", "parquet")
ALPACA_FIELDS = ("instruction", "input", "output", "task_type")
IGNORED_FIELDS = ("id",)  # present in many exported files; carries nothing to import
MAX_PROBLEMS = 200


user_turn = prompts.user_turn


def to_record(e: Example, fmt: str, system: str = "") -> dict[str, Any]:
    """One exported line; a reviewer's rating rides along as `rating` (always a column in Parquet)."""
    rated = {"rating": e.rating} if e.rating is not None or fmt == "parquet" else {}
    if fmt in ("alpaca", "parquet"):
        return {"instruction": e.instruction, "input": e.input, "output": e.output, "task_type": e.task_type, **rated}
    prompt = user_turn(e.instruction, e.input)
    if fmt == "sharegpt":
        turns = [{"from": "system", "value": system}] if system else []
        talk = [*turns, {"from": "human", "value": prompt}, {"from": "gpt", "value": e.output}]
        return {"conversations": talk, **rated}
    if fmt == "openai":
        msgs = [{"role": "system", "content": system}] if system else []
        talk = [*msgs, {"role": "user", "content": prompt}, {"role": "assistant", "content": e.output}]
        return {"messages": talk, **rated}
    raise UserError(f"unknown dataset format {fmt!r} (one of: {', '.join(FORMATS)})")


def default_suffix(fmt: str) -> str:
    return ".parquet" if fmt == "parquet" else ".jsonl"


def export(examples: Iterable[Example], fmt: str, out: Path, system: str = "") -> int:
    """Write the examples; returns how many. The file appears only once it is complete."""
    if fmt not in FORMATS:
        raise UserError(f"unknown dataset format {fmt!r} (one of: {', '.join(FORMATS)})")
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give a file name")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    partial = out.with_name(out.name + ".partial")
    count = 0
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = [to_record(e, fmt) for e in examples]
            count = len(rows)
            table = {k: pa.array([r[k] for r in rows], pa.string()) for k in ALPACA_FIELDS}
            table["rating"] = pa.array([r["rating"] for r in rows], pa.int8())
            pq.write_table(pa.table(table), partial)
        else:
            with partial.open("w", encoding="utf-8") as fh:
                for e in examples:
                    fh.write(json.dumps(to_record(e, fmt, system), ensure_ascii=False) + "\n")
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    return count


# ---- import ----------------------------------------------------------------------------------


def detect(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    return None


def _chat_fields(record: dict[str, Any], fmt: str) -> tuple[dict[str, Any] | None, list[tuple[str | None, str]]]:
    """A single-turn chat record to instruction/output; problems as (field, message)."""
    key, role_key, text_key = ("messages", "role", "content") if fmt == "openai" else ("conversations", "from", "value")
    user_roles, bot_roles = ({"user"}, {"assistant"}) if fmt == "openai" else ({"human", "user"}, {"gpt", "assistant"})
    extra = sorted(set(record) - {key, *IGNORED_FIELDS})
    problems: list[tuple[str | None, str]] = [(k, f"unknown field (allowed: {key})") for k in extra]
    turns = record.get(key)
    if not isinstance(turns, list):
        return None, [*problems, (key, "must be a list of turns")]
    talk: list[tuple[str, Any]] = []
    for i, turn in enumerate(turns):
        where = f"{key}[{i}]"
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            problems.append((where, f"each turn needs '{role_key}' and '{text_key}'"))
            continue
        role = turn[role_key]
        if role == "system":
            continue
        if role not in user_roles | bot_roles:
            problems.append((f"{where}.{role_key}", f"unknown role {role!r}"))
            continue
        talk.append(("user" if role in user_roles else "assistant", turn[text_key]))
    if problems:
        return None, problems
    if [r for r, _ in talk] != ["user", "assistant"]:
        shape = " -> ".join(r for r, _ in talk) or "nothing"
        return None, [(key, f"expected one user turn then one assistant turn, got {shape}")]
    return {"instruction": talk[0][1], "output": talk[1][1]}, []


def check_record(record: Any, fmt: str, source: str, line: int) -> tuple[SeedDraft | None, list[Problem]]:
    if not isinstance(record, dict):
        return None, [Problem(source, line, None, f"expected a JSON object, got {type(record).__name__}")]
    if fmt == "alpaca":
        fields = {k: v for k, v in record.items() if k not in IGNORED_FIELDS}
        return check_seed(fields, source, line)
    mapped, found = _chat_fields(record, fmt)
    if mapped is None:
        return None, [Problem(source, line, f, m) for f, m in found]
    draft, problems = check_seed(mapped, source, line)
    return draft, [Problem(p.source, p.line, _chat_field(p.field, fmt), p.message) for p in problems]


def _chat_field(name: str | None, fmt: str) -> str | None:
    turn = {"instruction": "user", "output": "assistant"}.get(name or "")
    if turn is None:
        return name
    return f"{'messages' if fmt == 'openai' else 'conversations'} ({turn} turn)"


def _jsonl_records(path: Path) -> Iterable[tuple[int, Any, Problem | None]]:
    return infile.jsonl_records(path, "a .jsonl or .parquet dataset file")


def _parquet_records(path: Path) -> Iterable[tuple[int, Any, Problem | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths.regular_file(path, "a .parquet dataset file")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file: {exc}") from exc
    for row, record in enumerate(table.to_pylist(), start=1):
        yield row, {k: v for k, v in record.items() if v is not None or k in ("instruction", "output")}, None


def read_dataset(path: Path, fmt: str = "auto") -> tuple[str, list[tuple[int, SeedDraft]]]:
    """Every record of the file, validated; raises ValidationError listing every problem."""
    paths.regular_file(path, "a .jsonl or .parquet dataset file")
    if fmt not in ("auto", *FORMATS):
        raise UserError(f"unknown dataset format {fmt!r} (auto or one of: {', '.join(FORMATS)})")
    parquet = fmt == "parquet" or (fmt == "auto" and path.suffix.lower() == ".parquet")
    records = _parquet_records(path) if parquet else _jsonl_records(path)
    chosen = "parquet" if parquet else (None if fmt == "auto" else fmt)
    drafts: list[tuple[int, SeedDraft]] = []
    problems: list[Problem] = []
    for line, record, problem in records:
        if problem is not None:
            problems.append(problem)
            continue
        if chosen is None:
            chosen = detect(record)
            if chosen is None:
                problems.append(
                    Problem(
                        str(path),
                        line,
                        None,
                        "cannot tell the format: expected 'instruction'/'output'"
                        " (Alpaca), 'conversations' (ShareGPT) or 'messages' (OpenAI)",
                    )
                )
                break
        draft, found = check_record(record, "alpaca" if chosen == "parquet" else chosen, str(path), line)
        problems += found
        if draft is not None:
            drafts.append((line, draft))
        if len(problems) >= MAX_PROBLEMS:
            break
    if not drafts and not problems:
        problems.append(Problem(str(path), None, None, "no examples found (the file is empty)"))
    if problems:
        raise ValidationError(problems, header=f"{path}: {len(problems)} problem(s); nothing was imported")
    return chosen or "alpaca", drafts
