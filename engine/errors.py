"""Errors a user can act on. Everything else is a bug and is reported as such."""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """Bad input or a missing prerequisite: shown to the user as-is, never as a traceback."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating input, pinned to where it is."""

    source: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


class ValidationError(UserError):
    """Input failed validation; carries every problem, not just the first."""

    def __init__(self, problems: list[Problem], header: str = "") -> None:
        self.problems = problems
        self.header = header
        super().__init__(self.render())

    def render(self, limit: int = 50) -> str:
        lines = [self.header] if self.header else []
        lines += [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


class Interrupted(Exception):
    """Raised by a stage at a safe point after a stop was requested (SIGTERM, Ctrl-C)."""
