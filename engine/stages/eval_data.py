"""Evaluation sets: held-out seeds, labelled JSONL, PubMedQA, and the shipped off-domain set.

An item is an instruction, an input, the reference output and, for classification, the label
set the model chooses from. A set is either all classification (every item has labels) or all
free-form. Few-shot demonstrations come from the project's training pool, never from an item
being evaluated.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from engine import infile, paths
from engine.errors import Problem, UserError, ValidationError
from engine.stages.scoring import normalize_answer
from engine.store import examples, seeds
from engine.store.records import Project

PUBMEDQA_LABELS = ("yes", "no", "maybe")
YES_NO_MAYBE = {"yes", "no", "maybe"}
GENERAL_SET = "general_eval.jsonl"
ALLOWED = {"id", "instruction", "input", "output", "labels"}


@dataclass(frozen=True)
class EvalItem:
    key: str
    instruction: str
    input: str
    output: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: tuple[EvalItem, ...]
    off_domain: bool = False
    source: str = ""
    labels: tuple[str, ...] = field(default=())  # the union of the items' label sets

    @property
    def classification(self) -> bool:
        return bool(self.items) and all(i.labels for i in self.items)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps([[i.key, i.instruction, i.input, i.output, list(i.labels)] for i in self.items])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _make(name: str, items: list[EvalItem], source: str, off_domain: bool = False) -> EvalSet:
    labels: list[str] = []
    for item in items:
        labels += [label for label in item.labels if label not in labels]
    return EvalSet(name, tuple(items), off_domain, source, tuple(labels))


def load_pubmedqa(path: Path, name: str = "pubmedqa") -> EvalSet:
    """The `ori_pqal.json` layout: {pmid: {QUESTION, CONTEXTS, final_decision, ...}}."""
    text = infile.read_text(path, "a PubMedQA .json file")
    raw, problem = infile.parse_json(text, str(path))
    if problem is not None:
        raise ValidationError([problem], header=f"{path}: not a PubMedQA JSON file")
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: expected an object of PubMedQA items keyed by PMID")
    problems: list[Problem] = []
    items: list[EvalItem] = []
    for pmid, entry in raw.items():
        where = f"{path}: item {pmid}"
        if not isinstance(entry, dict):
            problems.append(Problem(where, None, None, "not an object"))
            continue
        question, contexts, decision = entry.get("QUESTION"), entry.get("CONTEXTS"), entry.get("final_decision")
        if not isinstance(question, str) or not question.strip():
            problems.append(Problem(where, None, "QUESTION", "missing or empty"))
        elif not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            problems.append(Problem(where, None, "CONTEXTS", "expected a list of strings"))
        elif decision not in PUBMEDQA_LABELS:
            problems.append(Problem(where, None, "final_decision", f"{decision!r} is not yes, no or maybe"))
        else:
            items.append(
                EvalItem(
                    str(pmid),
                    f"Answer the question with yes, no or maybe, based on the abstract: {question.strip()}",
                    "\n".join(c.strip() for c in contexts),
                    str(decision),
                    PUBMEDQA_LABELS,
                )
            )
    if problems:
        raise ValidationError(problems)
    return _make(name, items, str(path))


def load_jsonl(path: Path, name: str | None = None, off_domain: bool = False) -> EvalSet:
    """Labelled JSONL: instruction, input (optional), output, labels (optional list), id (optional)."""
    problems: list[Problem] = []
    items: list[EvalItem] = []
    src = str(path)
    first_kind: tuple[int, bool] | None = None  # (line, has labels) of the first good item
    for n, rec, problem in infile.jsonl_records(path, "a labelled .jsonl evaluation file"):
        if problem is not None:
            problems.append(problem)
            continue
        if not isinstance(rec, dict):
            problems.append(Problem(src, n, None, "expected an object"))
            continue
        found = [
            Problem(src, n, k, f"unknown field (allowed: {', '.join(sorted(ALLOWED))})")
            for k in sorted(set(rec) - ALLOWED)
        ]
        for key in ("instruction", "output"):
            if key not in rec or rec[key] is None:
                found.append(Problem(src, n, key, "missing"))
            elif not isinstance(rec[key], str):
                found.append(Problem(src, n, key, f"must be text, got {type(rec[key]).__name__}"))
            elif not rec[key].strip():
                found.append(Problem(src, n, key, "is empty"))
        if not isinstance(rec.get("input", ""), str):
            found.append(Problem(src, n, "input", f"must be text, got {type(rec['input']).__name__}"))
        labels = rec.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
            found.append(Problem(src, n, "labels", "expected a list of non-empty strings"))
        elif "labels" in rec and not labels:
            found.append(Problem(src, n, "labels", "is empty: give at least two labels, or leave the field out"))
        elif labels and len(labels) < 2:
            found.append(Problem(src, n, "labels", "a label set needs at least two labels"))
        elif labels and isinstance(rec.get("output"), str) and rec["output"].strip() not in [x.strip() for x in labels]:
            found.append(Problem(src, n, "output", f"{rec['output']!r} is not one of the labels {labels}"))
        if not found and labels:
            dupes = sorted({x.strip() for x in labels if [y.strip() for y in labels].count(x.strip()) > 1})
            if dupes:
                found.append(Problem(src, n, "labels", f"repeats {dupes}"))
        if not found:
            if first_kind is None:
                first_kind = (n, bool(labels))
            elif first_kind[1] != bool(labels):
                had = "a label set" if first_kind[1] else "no labels"
                found.append(
                    Problem(
                        src,
                        n,
                        "labels",
                        f"line {first_kind[0]} has {had} and this one does not match it:"
                        " a set is all classification or all free-form (labels on every line or on none)",
                    )
                )
        if found:
            problems += found
            continue
        items.append(
            EvalItem(
                str(rec.get("id", n)),
                rec["instruction"].strip(),
                rec.get("input", "").strip(),
                rec["output"].strip(),
                tuple(x.strip() for x in labels),
            )
        )
    if not problems and not items:
        problems.append(Problem(src, None, None, "no items"))
    if problems:
        raise ValidationError(problems)
    return _make(name or path.stem, items, str(path), off_domain)


def load_file(path: Path) -> EvalSet:
    """A PubMedQA .json or a labelled .jsonl, by content."""
    path = path.expanduser()
    paths.regular_file(path, "a labelled .jsonl or a PubMedQA .json file")
    if path.suffix.lower() == ".json":
        return load_pubmedqa(path, path.stem)
    return load_jsonl(path)


def general_set() -> EvalSet:
    """The shipped off-domain check: general yes/no questions, written for this project."""
    return load_jsonl(paths.shipped_dir() / GENERAL_SET, "general (off-domain)", off_domain=True)


def held_out_seed_sets(db: Database, project: Project) -> list[EvalSet]:
    """The project's reserved seeds: yes/no/maybe ones as a classification set, the rest free-form."""
    held = seeds.held_out(db, project)
    choice, free = [], []
    for s in held:
        if normalize_answer(s.output) in YES_NO_MAYBE:
            choice.append(EvalItem(f"seed-{s.id}", s.instruction, s.input, normalize_answer(s.output), PUBMEDQA_LABELS))
        else:
            free.append(EvalItem(f"seed-{s.id}", s.instruction, s.input, s.output))
    out = []
    if choice:
        out.append(_make("held-out seeds (yes/no/maybe)", choice, "seeds"))
    if free:
        out.append(_make("held-out seeds (free-form)", free, "seeds"))
    return out


def limited(ev: EvalSet, limit: int | None, seed: int = 0) -> EvalSet:
    """A fixed random subset of `limit` items (the same subset every time for the same seed)."""
    if not limit or limit >= len(ev.items):
        return ev
    picked = sorted(random.Random(seed).sample(range(len(ev.items)), limit))
    return _make(ev.name, [ev.items[i] for i in picked], ev.source, ev.off_domain)


def _signature(instruction: str, input_text: str) -> str:
    return normalize_answer(f"{instruction} {input_text}")


def few_shot_pool(db: Database, project: Project, sets: list[EvalSet]) -> list[EvalItem]:
    """Training examples usable as demonstrations: none equal to (or containing) an evaluated item."""
    banned = {_signature(i.instruction, i.input) for s in sets for i in s.items}
    banned_instr = {normalize_answer(i.instruction) for s in sets for i in s.items}
    pool = []
    for ex in examples.training_set(db, project, include_pending=False):
        if _signature(ex.instruction, ex.input) in banned or normalize_answer(ex.instruction) in banned_instr:
            continue
        pool.append(EvalItem(f"ex-{ex.id}", ex.instruction, ex.input, ex.output))
    return pool


def demonstrations(pool: list[EvalItem], item: EvalItem, k: int, seed: int = 0) -> list[EvalItem]:
    """k demonstrations, the same for every item (so their prompt prefix is evaluated once per batch)
    and on every run; an item that is itself among them gets the next one in its place."""
    if k <= 0 or not pool:
        return []
    order = random.Random(f"{seed}:shared").sample(pool, min(k + 1, len(pool)))
    return [d for d in order if d.key != item.key][:k]


def reserve_seeds(db: Database, project: Project, fraction: float, seed: int = 0) -> dict[str, Any]:
    """Mark a fixed random share of the seeds as held out (kept out of generation prompts).

    The share is taken within each kind of task (yes/no/maybe answers, then each task type), so every
    kind the seeds cover is in the evaluation in proportion; the same seeds each time."""
    if not 0 <= fraction < 1:
        raise UserError(f"--fraction: {fraction} must be at least 0 and below 1")
    found = sorted(seeds.list_seeds(db, project), key=lambda s: s.id)
    groups: dict[str, list[Any]] = {}
    for s in found:
        kind = "yes/no/maybe" if normalize_answer(s.output) in YES_NO_MAYBE else s.task_type or "general"
        groups.setdefault(kind, []).append(s)
    rng = random.Random(seed)
    picked: set[int] = set()
    for kind in sorted(groups):
        members = groups[kind]
        picked |= {s.id for s in rng.sample(members, round(len(members) * fraction))}
    if fraction and len(found) - len(picked) < 3:
        raise UserError(
            f"{project.name} has {len(found)} seeds: holding out {len(picked)} leaves fewer than 3 for generation"
        )
    seeds.set_held_out(db, project, picked)
    return {"seeds": len(found), "held_out": len(picked), "for_generation": len(found) - len(picked)}
