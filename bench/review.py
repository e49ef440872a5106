"""Review screen at scale: opening time and key-press latency with 10 and with 50,000 examples.

Both projects live in one temporary store and are measured in the same process, headless
(Textual's Pilot), so the ratio compares like with like. A key press is timed from the key
event to the screen being idle again (store write, counts, rows, detail pane, repaint), in CPU
time of this process: Pilot's own waiting is idle time and would only add noise.

    python bench/review.py [--big 50000] [--presses 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def measure(name: str, presses: int) -> tuple[float, dict[str, list[float]]]:
    from selfspec_tui.app import SelfSpecApp
    from selfspec_tui.screens.review import ReviewScreen

    app = SelfSpecApp()
    per_key: dict[str, list[float]] = {}
    async with app.run_test(size=(140, 45)) as pilot:
        t0 = time.perf_counter()
        await app.push_screen(ReviewScreen(name))
        await pilot.pause()
        opened = time.perf_counter() - t0
        for i in range(presses):
            key = ["a", "r", "n", "u", "down", "up"][i % 6]
            t = time.process_time()
            await pilot.press(key)
            await pilot.pause()
            per_key.setdefault(key, []).append((time.process_time() - t) * 1000)
    return opened, per_key


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=50_000)
    ap.add_argument("--presses", type=int, default=60)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="selfspec-bench-review-")
    os.environ["SELFSPEC_HOME"] = home

    from engine.store import open_store, projects
    from tests.helpers import fill

    db = open_store()
    for name, n in (("small", 10), ("big", args.big)):
        p = projects.create(db, name, "biomedicine", "smollm2-135m-instruct", {})
        t = time.perf_counter()
        fill(db, p, n, seed=1)
        print(f"{name}: {n:,} examples stored in {time.perf_counter() - t:.1f} s")
    db.close()

    results = {}
    for name in ("small", "big", "small", "big"):  # interleaved twice; the second round is reported
        results[name] = asyncio.run(measure(name, args.presses))
    print(f"\n{'':10}{'10 examples':>14}{f'{args.big:,} examples':>20}{'difference':>14}")
    so, sk = results["small"]
    bo, bk = results["big"]
    print(f"{'open (s)':10}{so:14.3f}{bo:20.3f}{bo - so:14.3f}")
    worst = 0.0
    for key in sk:
        s_med, b_med = statistics.median(sk[key]), statistics.median(bk[key])
        worst = max(worst, b_med - s_med)
        print(f"{'key ' + key + ' ms':10}{s_med:14.1f}{b_med:20.1f}{b_med - s_med:14.1f}")
    all_s = statistics.median(v for vals in sk.values() for v in vals)
    all_b = statistics.median(v for vals in bk.values() for v in vals)
    print(
        f"\nmedian key press: {all_s:.1f} ms vs {all_b:.1f} ms (ratio {all_b / all_s:.2f}); worst key difference "
        f"{worst:.1f} ms; open at {args.big:,}: {bo:.2f} s"
    )
    print(
        f"goals: open < 1 s: {'met' if bo < 1 else 'MISSED'}; key press within 10 ms of the 10-example case: "
        f"{'met' if worst <= 10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
