"""Statuses, phases and finish reasons: the words the store, the events and the screens share.

StrEnums, so a value is its own string in SQLite and JSON and compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class JobStatus(StrEnum):
    """Adapters, exports and evaluations: something that is built over one or more runs."""

    TRAINING = "training"  # adapters only
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    DONE = "done"


UNFINISHED: tuple[JobStatus, ...] = (
    JobStatus.TRAINING,
    JobStatus.RUNNING,
    JobStatus.INTERRUPTED,
    JobStatus.FAILED,
)


class Phase(StrEnum):
    """A generation's phase."""

    BRAINSTORM = "brainstorm"
    RESPOND = "respond"
    DONE = "done"


class ExampleStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"


EXAMPLE_STATUSES: tuple[str, ...] = tuple(s.value for s in ExampleStatus)


class TaskStatus(StrEnum):
    KEPT = "kept"
    DROPPED = "dropped"


FinishReason = Literal["stop", "length", "cancelled"]
