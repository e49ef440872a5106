"""What the corruption check at open costs: opening the store with `PRAGMA quick_check` against
opening it without, on a store of 50,000 examples (and the full `integrity_check` doctor runs).

Both are measured in the same process on the same file, alternating, so the ratio compares like
with like on a noisy machine.

    python bench/store_open.py [--examples 50000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(n: int) -> Path:
    from engine.schema import SeedDraft
    from engine.store import open_store, projects
    from engine.store.examples import add_imported

    db = open_store()
    p = projects.create(db, "big", "biomedicine", "smollm2-135m-instruct", {})
    words = "insulin statin sepsis asthma kidney warfarin dose trial cohort biopsy".split()
    drafts = []
    for i in range(n):
        text = " ".join(words[(i * 7 + j) % len(words)] for j in range(40))
        drafts.append((i + 1, SeedDraft(f"Task {i}: explain {text[:80]}", text, text * 3, "general")))
    add_imported(db, p, drafts, "pending", "bench")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    from engine import paths

    return paths.db_path()


def timed(check: bool) -> float:
    from engine.store import open_store

    t = time.perf_counter()
    open_store(check=check).close()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SELFSPEC_HOME"] = tmp
        path = build(a.examples)
        with_check, without = [], []
        for _ in range(a.repeats):
            with_check.append(timed(True))
            without.append(timed(False))
        from engine.store import open_store
        from engine.store.db import integrity_check

        db = open_store(check=False)
        t = time.perf_counter()
        integrity_check(db)
        full = time.perf_counter() - t
        db.close()
        size = path.stat().st_size / 2**20
    w, wo = statistics.median(with_check), statistics.median(without)
    print(f"store: {a.examples} examples, {size:.1f} MiB; load average {os.getloadavg()[0]:.2f}")
    print(f"open without check: {wo * 1000:.1f} ms   with quick_check: {w * 1000:.1f} ms   ratio {w / wo:.2f}x")
    print(f"full integrity_check (doctor): {full * 1000:.0f} ms")


if __name__ == "__main__":
    main()
