"""Reading files the user hands us, the same way for every importer.

Every reader goes through here so that the same hostile input gets the same clear answer,
pinned to file and line: a pipe or device is refused before it is opened, NUL bytes and bad
UTF-8 name their line, JSON nested too deeply names the line where it goes too deep instead
of raising RecursionError, and text that SQLite could not store (a lone surrogate such as
"\\ud800", which JSON escapes can produce) is caught at validation, not at import.

Pure Python on purpose: the front end may import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import Problem, UserError

MAX_DEPTH = 100  # lists/objects nested deeper than this are refused (real data nests 2-4 deep)


def read_bytes(path: Path, expected: str, max_bytes: int | None = None) -> bytes:
    """The whole file, after checking it is a regular file of a sane size."""
    paths.regular_file(path, expected)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise UserError(f"{path}: larger than {max_bytes // 2**20} MiB; is this {expected}?")
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise UserError(f"{path}: larger than {max_bytes // 2**20} MiB; is this {expected}?")
    return data


def line_of(data: bytes | str, offset: int) -> int:
    if isinstance(data, bytes):
        return data[:offset].count(b"\n") + 1
    return data[:offset].count("\n") + 1


def decode(data: bytes, path: Path | str, expected: str = "UTF-8 text") -> str:
    """UTF-8 text (a BOM is dropped); NUL bytes and bad bytes are reported with their line."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UserError(f"{path}:{line_of(data, nul)}: contains NUL bytes (a binary file?); expected {expected}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}:{line_of(data, exc.start)}: not valid UTF-8 (bad byte at offset {exc.start})") from exc


def read_text(path: Path, expected: str, max_bytes: int | None = None) -> str:
    return decode(read_bytes(path, expected, max_bytes), path, expected)


def text_problem(value: Any) -> str | None:
    """Why a value cannot be stored as text, or None: not a string, NUL, or not encodable as UTF-8."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        return (
            f"contains an unpaired surrogate {ascii(bad)} at character {exc.start + 1}:"
            " not valid Unicode, so it cannot be stored"
        )
    return None


def _deepest(text: str, limit: int, strings: bool = True) -> int | None:
    """The line where brackets first nest deeper than `limit` (JSON strings skipped), if they do."""
    depth = 0
    line = 1
    in_string = escaped = False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and strings:
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line
        elif ch in "]}":
            depth -= 1
    return None


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def unstorable(value: Any, where: str = "") -> tuple[str, str] | None:
    """The first string (or key) in a parsed value that cannot be stored: (field path, why)."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            why = text_problem(item)
            if why:
                return at, why
        elif isinstance(item, dict):
            for k, v in item.items():
                why = text_problem(k)
                if why:
                    return at or "(key)", f"a field name {why}"
                stack.append((v, f"{at}.{k}" if at else str(k)))
        elif isinstance(item, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))
    return None


def parse_json(text: str, source: str, line: int | None = None) -> tuple[Any, Problem | None]:
    """A JSON value, or a Problem saying where and why not (never a RecursionError).

    `line` is the line number of a one-line record (JSONL); for a whole file, the line inside it.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        at = line if line is not None else exc.lineno
        return None, Problem(source, at, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        inner = _deepest(text, MAX_DEPTH) or 1
        at = line if line is not None else inner
        return None, Problem(source, at, None, f"nested more than {MAX_DEPTH} levels deep; refusing to read it")
    if _too_deep(value, MAX_DEPTH):
        inner = _deepest(text, MAX_DEPTH) or 1
        at = line if line is not None else inner
        return None, Problem(source, at, None, f"nested more than {MAX_DEPTH} levels deep; refusing to read it")
    bad = unstorable(value)
    if bad:
        field, why = bad
        return None, Problem(source, line if line is not None else 1, field or None, why)
    return value, None


def jsonl_records(path: Path, expected: str = "a .jsonl file") -> list[tuple[int, Any, Problem | None]]:
    """(line, record, problem) for each non-blank line; a NUL or bad UTF-8 is that line's problem."""
    data = read_bytes(path, expected)
    out: list[tuple[int, Any, Problem | None]] = []
    src = str(path)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if b"\x00" in raw:
            out.append((lineno, None, Problem(src, lineno, None, "contains NUL bytes (a binary file?)")))
            continue
        try:
            text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            out.append(
                (lineno, None, Problem(src, lineno, None, f"not valid UTF-8 (bad byte {exc.start} of the line)"))
            )
            continue
        if not text.strip():
            continue
        value, problem = parse_json(text, src, lineno)
        out.append((lineno, value, problem))
    return out


def load_yaml(text: str, source: str) -> tuple[Any, Any, Problem | None]:
    """(document, node tree, problem) with PyYAML's safe loader; deep nesting is a Problem."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        return None, None, Problem(source, line, None, f"invalid YAML: {getattr(exc, 'problem', exc)}")
    except RecursionError:
        at = _deepest(text, MAX_DEPTH, strings=False) or 1
        return None, None, Problem(source, at, None, f"nested more than {MAX_DEPTH} levels deep; refusing to read it")
    if _too_deep(doc, MAX_DEPTH):
        at = _deepest(text, MAX_DEPTH, strings=False) or 1
        return None, None, Problem(source, at, None, f"nested more than {MAX_DEPTH} levels deep; refusing to read it")
    bad = unstorable(doc)
    if bad:
        return None, None, Problem(source, None, bad[0] or None, bad[1])
    return doc, node, None
