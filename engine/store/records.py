"""Frozen records the store hands out; callers never see raw rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    domain: str
    base_model: str
    settings: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class SeedSet:
    id: int
    project_id: int
    name: str
    source: str
    created_at: str
    count: int = 0


@dataclass(frozen=True)
class Seed:
    id: int
    set_id: int
    instruction: str
    input: str
    output: str
    task_type: str
    set_name: str = ""
    held_out: int = 0


@dataclass(frozen=True)
class Document:
    id: int
    project_id: int
    source: str
    title: str
    sha256: str
    chars: int
    imported_at: str
    n_chunks: int = 0


@dataclass(frozen=True)
class Chunk:
    id: int
    document_id: int
    ordinal: int
    text: str
    char_start: int
    char_end: int
    n_tokens: int
    source: str = ""


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int | None
    stage: str
    config: dict[str, Any]
    status: str
    pid: int | None
    started_at: str
    ended_at: str | None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    kind: str
    path: str
    architecture: str
    info: dict[str, Any]
    added_at: str


def loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


def from_row(cls: type[T], row: dict[str, Any], json_columns: tuple[str, ...] = ()) -> T:
    """Build a record from a row by field name; JSON text columns are decoded."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    data = {k: v for k, v in row.items() if k in names}
    for col in json_columns:
        data[col] = loads(data.get(col))
    return cls(**data)


@dataclass(frozen=True)
class Generation:
    id: int
    project_id: int
    config: dict[str, Any]
    target: int
    phase: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Candidate:
    id: int
    generation_id: int
    prompt_idx: int
    item_idx: int
    instruction: str
    input: str
    task_type: str
    status: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Example:
    id: int
    project_id: int
    generation_id: int | None
    candidate_id: int | None
    instruction: str
    input: str
    output: str
    task_type: str
    status: str
    flag: str
    provenance: dict[str, Any]
    passages: list[dict[str, Any]]
    created_at: str
    version: int = 0
