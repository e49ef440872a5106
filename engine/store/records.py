"""Frozen records the store hands out; callers never see raw rows."""

from __future__ import annotations

import functools
import json
import typing
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

from engine.spec.kinds import ExampleStatus, Phase, RunStatus, TaskStatus

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
    status: RunStatus
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


@functools.cache
def _enum_fields(cls: Any) -> dict[str, type[StrEnum]]:
    """Fields typed with a StrEnum (statuses, phases): their text from the store becomes the enum."""
    hints = typing.get_type_hints(cls)
    return {name: t for name, t in hints.items() if isinstance(t, type) and issubclass(t, StrEnum)}


def from_row(cls: type[T], row: dict[str, Any], json_columns: tuple[str, ...] = ()) -> T:
    """Build a record from a row by field name; JSON text columns are decoded, statuses typed."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    data = {k: v for k, v in row.items() if k in names}
    for col in json_columns:
        data[col] = loads(data.get(col))
    for name, enum in _enum_fields(cls).items():  # type: ignore[arg-type]
        if data.get(name) is not None:
            data[name] = enum(data[name])
    return cls(**data)


@dataclass(frozen=True)
class Generation:
    id: int
    project_id: int
    config: dict[str, Any]
    target: int
    phase: Phase
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
    status: TaskStatus
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
    status: ExampleStatus
    flag: str
    provenance: dict[str, Any]
    passages: list[dict[str, Any]]
    created_at: str
    version: int = 0
    rating: int | None = None
