"""What this machine can do: each check runs on its own and reports, never raises."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.backends import probes
from engine.stages import models


def _check(fn: Callable[[], tuple[bool, str]]) -> dict[str, Any]:
    try:
        ok, detail = fn()
    except Exception as exc:  # doctor reports every failure instead of stopping
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "detail": detail}


def run_doctor(db: Database) -> dict[str, Any]:
    home = paths.home()
    free = shutil.disk_usage(home).free
    checks = {
        "torch": _check(probes.torch),
        "cuda": _check(probes.cuda),
        "bitsandbytes_4bit": _check(probes.bnb),
        "llama_cpp": _check(probes.llama_cpp),
        "embedder": _check(probes.embedder),
        "hnswlib": _check(probes.hnswlib),
        "disk": {"ok": free > 2 * 2**30, "detail": f"{free / 2**30:.1f} GiB free in {home}"},
        "cpu": {"ok": True, "detail": f"{os.cpu_count()} cores"},
    }
    found = models.describe_all(db)
    checks["models"] = {
        "ok": all(m["present"] for m in found),
        "detail": ", ".join(f"{m['name']} ({'ok' if m['present'] else 'missing'})" for m in found),
    }
    return checks
