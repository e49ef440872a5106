"""Reading seed tasks from JSONL, CSV and InstructLab qna.yaml, with every problem located."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from engine import infile
from engine.errors import Problem, UserError, ValidationError
from engine.schema import SeedDraft, check_seed

MAX_FILE_BYTES = 50 * 1024 * 1024


def _read_text(path: Path) -> str:
    return infile.read_text(path, "a .jsonl, .csv or qna.yaml seed file", MAX_FILE_BYTES)


def parse_jsonl(path: Path, text: str) -> tuple[list[tuple[int, SeedDraft]], list[Problem]]:
    drafts: list[tuple[int, SeedDraft]] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record, problem = infile.parse_json(line, str(path), lineno)
        if problem is not None:
            problems.append(problem)
            continue
        draft, found = check_seed(record, str(path), lineno)
        problems += found
        if draft:
            drafts.append((lineno, draft))
    return drafts, problems


def parse_csv(path: Path, text: str) -> tuple[list[tuple[int, SeedDraft]], list[Problem]]:
    drafts: list[tuple[int, SeedDraft]] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], [Problem(str(path), 1, None, "empty CSV: expected a header row")]
    except csv.Error as exc:
        return [], [Problem(str(path), 1, None, f"malformed CSV header: {exc}")]
    header = [h.strip() for h in header]
    missing = [f for f in ("instruction", "output") if f not in header]
    if missing:
        return [], [
            Problem(
                str(path), 1, f, "missing column in the header row (have: " + ", ".join(repr(h) for h in header) + ")"
            )
            for f in missing
        ]
    dupes = {h for h in header if header.count(h) > 1}
    for h in sorted(dupes):
        problems.append(Problem(str(path), 1, h, "column appears more than once"))
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(str(path), reader.line_num, None, f"malformed CSV: {exc}"))
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(str(path), start_line, None, f"has {len(row)} cells, the header has {len(header)}"))
            continue
        record = {h: v for h, v in zip(header, row) if not (h in ("input", "task_type") and v == "")}
        draft, found = check_seed(record, str(path), start_line)
        problems += found
        if draft:
            drafts.append((start_line, draft))
    return drafts, problems


def parse_qna_yaml(path: Path, text: str) -> tuple[list[tuple[int, SeedDraft]], list[Problem]]:
    """InstructLab taxonomy qna.yaml: seed_examples of question/answer (+ optional context)."""
    import yaml

    src = str(path)
    doc, node, problem = infile.load_yaml(text, src)
    if problem is not None:
        return [], [problem]
    if not isinstance(doc, dict) or not isinstance(node, yaml.MappingNode):
        return [], [Problem(src, 1, None, "expected a mapping with 'seed_examples'")]
    examples_node = next((v for k, v in node.value if k.value == "seed_examples"), None)
    examples = doc.get("seed_examples")
    if not isinstance(examples, list) or not isinstance(examples_node, yaml.SequenceNode):
        return [], [Problem(src, 1, "seed_examples", "missing or not a list")]
    task_type = "qna"
    drafts: list[tuple[int, SeedDraft]] = []
    problems: list[Problem] = []
    for item, item_node in zip(examples, examples_node.value):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            problems.append(Problem(src, line, None, "seed example must be a mapping"))
            continue
        if "questions_and_answers" in item:  # knowledge qna.yaml (version 3)
            context = item.get("context", "")
            for qa in item.get("questions_and_answers") or []:
                qa_record = _qna_record(qa, context, task_type)
                draft, found = check_seed(qa_record, src, line)
                problems += found
                if draft:
                    drafts.append((line, draft))
            continue
        record: dict[str, Any] = _qna_record(item, item.get("context", ""), task_type)
        draft, found = check_seed(record, src, line)
        problems += found
        if draft:
            drafts.append((line, draft))
    return drafts, problems


def _qna_record(item: Any, context: Any, task_type: str) -> Any:
    if not isinstance(item, dict):
        return item
    record: dict[str, Any] = {"task_type": task_type}
    extra = set(item) - {"question", "answer", "context"}
    for key in extra:
        record[key] = item[key]
    if "question" in item:
        record["instruction"] = item["question"]
    if "answer" in item:
        record["output"] = item["answer"]
    if context:
        record["input"] = context
    return record


def read_seed_file(path: Path) -> list[SeedDraft]:
    """Parse and validate a whole file; raise ValidationError listing every problem."""
    text = _read_text(path)
    name = path.name.lower()
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        drafts, problems = parse_jsonl(path, text)
    elif name.endswith(".csv"):
        drafts, problems = parse_csv(path, text)
    elif name.endswith((".yaml", ".yml")):
        drafts, problems = parse_qna_yaml(path, text)
    else:
        raise UserError(f"{path}: unsupported seed file type (use .jsonl, .csv or qna.yaml)")
    seen: dict[tuple[str, str], int] = {}
    for line, d in drafts:
        if d.key() in seen:
            problems.append(Problem(str(path), line, "instruction", f"duplicate of the task on line {seen[d.key()]}"))
        else:
            seen[d.key()] = line
    if not drafts and not problems:
        problems.append(Problem(str(path), None, None, "no seed tasks found (the file is empty)"))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ValidationError(problems, header=f"{path}: {len(problems)} problem(s); nothing was imported")
    return [d for _, d in drafts]
