"""The one rule for resuming a run whose settings are frozen in the store.

An unfinished generation or adapter resumes with the settings it was started with. Options given
again with the same values are fine; a different value for a setting that defines the data is
refused (never silently ignored or mixed in); run-control settings (how long to run, how often to
checkpoint) may change and are written back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.errors import UserError

M = TypeVar("M", bound=BaseModel)


def reconcile(
    what: str,
    stored: M,
    options: Mapping[str, Any],
    build: Callable[[dict[str, Any], M | None], M],
    run_control: Collection[str],
    describe: Callable[[Exception], str],
    instead: str,
) -> tuple[M, bool]:
    """(the settings to resume with, whether run control changed them).

    `what` names the unfinished thing ("generation 3"); `instead` says what --new does.
    """
    data = {k: v for k, v in options.items() if k not in run_control}
    control = {k: v for k, v in options.items() if k in run_control}
    try:
        if build(data, stored) != stored:
            changed = sorted(k for k in data if build({k: data[k]}, stored) != stored)
            raise UserError(
                f"{what} is unfinished and was started with other settings ({', '.join(changed)}); "
                f"run without them to resume it, or pass --new {instead}"
            )
        updated = build(control, stored) if control else stored
    except ValidationError as exc:
        raise UserError(describe(exc)) from exc
    return updated, updated != stored


def fresh(
    options: Mapping[str, Any], build: Callable[[dict[str, Any], M | None], M], describe: Callable[[Exception], str]
) -> M:
    """New settings from options over the defaults; a UserError names any bad option."""
    try:
        return build(dict(options), None)
    except ValidationError as exc:
        raise UserError(describe(exc)) from exc
