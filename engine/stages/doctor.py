"""What this machine can do: each check runs on its own and reports, never raises."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.backends import probes
from engine.stages import models
from engine.store.db import integrity_check, recovery_hint


def _check(fn: Callable[[], tuple[bool, str]]) -> dict[str, Any]:
    try:
        ok, detail = fn()
    except Exception as exc:  # doctor reports every failure instead of stopping
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "detail": detail}


def store_check() -> dict[str, Any]:
    """The full integrity check of the store, read-only."""
    path = paths.db_path()
    if not path.exists():
        return {"ok": True, "detail": f"{path} (not created yet)"}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            found = integrity_check(con)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        found = [str(exc)]
    if found == ["ok"]:
        return {"ok": True, "detail": f"{path}: integrity check ok ({path.stat().st_size / 2**20:.1f} MiB)"}
    return {"ok": False, "detail": recovery_hint(path) + " | integrity_check: " + "; ".join(found)[:500]}


def run_doctor(db: Database | None) -> dict[str, Any]:
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
    checks["store"] = store_check()
    if db is None:
        return checks
    found = models.describe_all(db)
    checks["models"] = {
        "ok": all(m["present"] for m in found),
        "detail": ", ".join(f"{m['name']} ({'ok' if m['present'] else 'missing'})" for m in found),
    }
    return checks
