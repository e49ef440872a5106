"""The engine's one output channel: JSON-lines events on stdout (their types: engine.spec.events).

The TUI reads them from the child process; `--format text` renders the same events for a person.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from engine.spec import events as ev

Event = ev.Event | dict[str, Any]
Sink = Callable[[Any], None]


def json_sink(stream: TextIO | None = None) -> Sink:
    def emit(event: Event) -> None:
        out = stream or sys.stdout
        out.write(json.dumps(ev.to_dict(event), ensure_ascii=False, default=str) + "\n")
        out.flush()

    return emit


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "measuring"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def rate_text(per_s: float | None, unit: str = "") -> str:
    """A rate in the time unit that reads best: `3.2 steps/s`, `1.5 tasks kept/min`, `4.0 /h`."""
    unit = f" {unit}" if unit else ""
    if not per_s or per_s <= 0:
        return "rate: measuring"
    if per_s >= 1:
        return f"{per_s:.1f}{unit}/s"
    if per_s * 60 >= 1:
        return f"{per_s * 60:.1f}{unit}/min"
    return f"{per_s * 3600:.1f}{unit}/h"


def describe_progress(event: ev.Progress) -> str:
    """One line: done/total, rate, ETA and the stage's own figures."""
    done, total, unit, x = event.done, event.total, event.unit, event.extra
    parts = [f"{done}/{total} {unit}" if total else f"{done} {unit}"]
    if total or event.rate:
        parts.append(rate_text(event.rate, unit))
    if total:
        parts.append(f"ETA {eta_text(event.eta_s)}")
    if x.get("model"):
        parts.append(f"model {x['model']}")
    if x.get("loss") is not None:
        parts.append(f"loss {x['loss']:.4f}")
    if x.get("val_loss") is not None:
        parts.append(f"val {x['val_loss']:.4f}")
    if x.get("lr") is not None:
        parts.append(f"lr {x['lr']:.2e}")
    if x.get("tokens_per_s"):
        parts.append(f"{x['tokens_per_s']:.0f} tok/s")
    workers = x.get("workers") or []
    if workers:  # short: the line must fit a terminal (the events carry each worker's host:pid)
        rates = [_worker_rate(w) for w in workers]
        parts.append(f"{len(workers)} workers: " + " · ".join(rates) + " tok/s")
    counters = x.get("counters") or {}
    if counters:
        parts.append(", ".join(f"{k} {v}" for k, v in counters.items()))
    dropped = x.get("dropped") or {}
    if dropped:
        top = sorted(dropped.items(), key=lambda kv: -kv[1])[:4]
        parts.append("dropped: " + ", ".join(f"{k} {v}" for k, v in top))
    return "  ".join(parts)


def _worker_rate(w: dict[str, Any]) -> str:
    if w.get("lost"):
        return "lost"
    return f"{w['tokens_per_s']:.0f}" if w.get("tokens_per_s") else "-"


class Progress:
    """Counts done items and derives rate and ETA from a sliding window of recent updates."""

    def __init__(self, emit: Sink, stage: str, total: int | None, unit: str, done: int = 0):
        self.emit, self.stage, self.total, self.unit = emit, stage, total, unit
        self.done = done
        self._start = time.monotonic()
        self._window: deque[tuple[float, int]] = deque(maxlen=20)
        self._window.append((self._start, done))
        self._last_emit = 0.0
        self.extra: dict[str, Any] = {}  # stage-specific figures sent with every snapshot

    def advance(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        self._window.append((now, self.done))
        if force or now - self._last_emit >= 0.2 or self.done == self.total:
            self._last_emit = now
            self.emit(self.snapshot())

    def rate(self) -> float | None:
        (t0, d0), (t1, d1) = self._window[0], self._window[-1]
        if t1 - t0 <= 0 or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def snapshot(self) -> ev.Progress:
        rate = self.rate()
        eta = None
        if rate and self.total is not None:
            eta = max(0.0, (self.total - self.done) / rate)
        return ev.Progress(
            stage=self.stage,
            done=self.done,
            total=self.total,
            unit=self.unit,
            rate=round(rate, 3) if rate else None,
            eta_s=round(eta, 1) if eta is not None else None,
            elapsed_s=round(time.monotonic() - self._start, 1),
            extra=dict(self.extra),
        )
