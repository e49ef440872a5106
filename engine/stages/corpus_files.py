"""Finding and reading corpus files; every unusable file is skipped with a reason."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine import infile
from engine.errors import Problem, UserError
from engine.paths import not_regular

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
JSONL_SUFFIXES = (".jsonl",)
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class RawDocument:
    source: str
    title: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def discover(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """Expand folders (recursively, hidden entries skipped) into supported files, sorted."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            problems.append(Problem(str(path), None, None, "no such file or folder"))
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if not p.is_dir() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            supported = []
            for p in found:
                if p.suffix.lower() not in TEXT_SUFFIXES + JSONL_SUFFIXES:
                    continue
                why = not_regular(p) or _name_problem(p)
                if why:
                    problems.append(Problem(_shown(p), None, None, f"skipped: {why}"))
                else:
                    supported.append(p)
            if not supported and not problems:
                problems.append(Problem(str(path), None, None, "folder holds no .txt, .md or .jsonl files"))
            files += supported
        elif not_regular(path) or _name_problem(path):
            why = not_regular(path) or _name_problem(path)
            problems.append(Problem(_shown(path), None, None, f"skipped: {why}"))
        elif path.suffix.lower() not in TEXT_SUFFIXES + JSONL_SUFFIXES:
            problems.append(Problem(str(path), None, None, "unsupported file type (use .txt, .md or .jsonl)"))
        else:
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, problems


def _name_problem(path: Path) -> str | None:
    """A file name that is not valid UTF-8 cannot be stored as the document's source."""
    return "the file name is not valid UTF-8" if infile.text_problem(str(path)) else None


def _shown(path: Path) -> str:
    return ascii(str(path))[1:-1] if _name_problem(path) else str(path)


def _decode(path: Path) -> tuple[str | None, Problem | None]:
    try:
        text = infile.read_text(path, "a .txt, .md or .jsonl corpus file", MAX_FILE_BYTES)
    except UserError as exc:
        return None, Problem(str(path), None, None, str(exc).removeprefix(f"{path}").lstrip(": "))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return None, Problem(str(path), None, None, "empty file")
    return text, None


def _title_of(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:120]
    return fallback


def read_documents(path: Path) -> Iterator[RawDocument | Problem]:
    """Yield the documents in one file, or Problems for what had to be skipped."""
    text, problem = _decode(path)
    if problem or text is None:
        yield problem or Problem(str(path), None, None, "unreadable")
        return
    if path.suffix.lower() not in JSONL_SUFFIXES:
        yield RawDocument(str(path), _title_of(text, path.stem), text.strip())
        return
    good = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record, problem = infile.parse_json(line, str(path), lineno)
        if problem is not None:
            yield problem
            continue
        if not isinstance(record, dict):
            yield Problem(str(path), lineno, None, "expected a JSON object with a 'text' field")
            continue
        body = record.get("text")
        if not isinstance(body, str):
            why = "missing" if body is None else f"must be text, got {type(body).__name__}"
            yield Problem(str(path), lineno, "text", why)
            continue
        if not body.strip():
            yield Problem(str(path), lineno, "text", "is empty")
            continue
        title = record.get("title") if isinstance(record.get("title"), str) else ""
        good += 1
        yield RawDocument(f"{path}:{lineno}", title or _title_of(body, f"{path.stem}:{lineno}"), body.strip())
    if not good:
        yield Problem(str(path), None, None, "no usable lines (each needs a non-empty 'text')")
