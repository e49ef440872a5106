"""How many cores are actually free: llama.cpp with more threads than free cores collapses in speed."""

from __future__ import annotations

import os
import time


def _usable() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _busy_ticks() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            parts = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def free_cores(sample_s: float = 0.25) -> int:
    """Cores this process may use minus those other work keeps busy right now (at least 1).

    SELFSPEC_THREADS overrides. Busy time is sampled from /proc/stat over `sample_s`; where that is
    unavailable the usable core count is returned.
    """
    env = os.environ.get("SELFSPEC_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    usable = _usable()
    first = _busy_ticks()
    if first is None:
        return usable
    time.sleep(sample_s)
    second = _busy_ticks()
    if second is None or second[1] <= first[1]:
        return usable
    busy_fraction = (second[0] - first[0]) / (second[1] - first[1])
    total = os.cpu_count() or usable
    busy_cores = busy_fraction * total
    return max(1, min(usable, int(total - busy_cores + 0.5)))
