"""Plain-text rendering of command results for `--format text`."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def clip(text: str, width: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def hits(found: list[dict[str, Any]]) -> str:
    if not found:
        return "no passages found"
    out = []
    for i, h in enumerate(found, 1):
        out.append(f"{i}. score {h['score']:.3f}  {h['source']} (chunk {h['ordinal']})")
        out.append(textwrap.indent(textwrap.fill(" ".join(h["text"].split()), 96), "   "))
    return "\n".join(out)


def number(value: Any) -> Any:
    """A float as a person reads it: 4 significant digits (a loss, a rate), integers unchanged."""
    if not isinstance(value, float) or value != value or abs(value) == float("inf"):
        return value
    if abs(value) >= 1000:
        return round(value, 1)
    return float(f"{value:.4g}") if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"


def summary(data: dict[str, Any]) -> str:
    lines = []
    for key, value in data.items():
        if key == "problems":
            continue
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {number(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {number(value)}")
    problems = data.get("problems") or []
    if problems:
        lines.append(f"skipped ({len(problems)}):")
        lines += [f"  {p}" for p in problems[:50]]
        if len(problems) > 50:
            lines.append(f"  ... and {len(problems) - 50} more")
    return "\n".join(lines)


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def text_sink(stream: Any = None) -> Any:
    """Render events for a person: progress on stderr, results and summaries on stdout."""
    import time

    from engine.events import describe_progress
    from engine.spec import events as ev

    last = [0.0]

    def emit(raw: Any) -> None:
        err = stream or sys.stderr
        event = ev.parse(ev.to_dict(raw))
        if isinstance(event, ev.Progress):
            now = time.monotonic()
            final = bool(event.total) and event.done == event.total
            if now - last[0] < 0.5 and not final:
                return
            last[0] = now
            tty = err.isatty()
            err.write(f"{event.stage}: {describe_progress(event)}" + ("\033[K\r" if tty and not final else "\n"))
        elif isinstance(event, ev.Log):
            err.write(("" if event.level == "info" else f"{event.level}: ") + f"{event.message}\n")
        elif isinstance(event, ev.Result):
            data = event.data or {}
            view = data.get("view")
            if view == "table":
                out(table(data["rows"], data["header"]) if data["rows"] else data.get("empty", "(none)"))
            elif view == "hits":
                out(hits(data["hits"]))
            else:
                out(summary(data))
        elif isinstance(event, ev.Finished) and event.summary:
            out(summary(event.summary))
        elif isinstance(event, ev.Failed):
            err.write(f"error: {event.error}\n")
        elif isinstance(event, ev.Interrupted):
            err.write(f"interrupted: {event.message}\n")
        err.flush()

    return emit
