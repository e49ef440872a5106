"""Chat-template prompts against plain completion prompts on the embedded default (a chat-tuned base).

Two real generations with the same seed, target and settings on the shipped biomedicine seeds and
demo corpus, differing only in `--prompt-style`; for each: brainstorm prompts per kept task, drop
reasons, examples per minute, mean answer length, and the share of yes/no/maybe tasks answered by
label. The last line is `chat vs completion, kept tasks per prompt: X.XXx`.

    python bench/prompt_style.py [--target 16] [--grounded auto|on|off]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine(home: Path, *args: str) -> str:
    env = {**os.environ, "SELFSPEC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("SELFSPEC_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-m", "engine", "--format", "text", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(args)}")
    return done.stdout


def one(style: str, target: int, grounded: str) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix=f"selfspec-style-{style}-"))
    engine(home, "project", "create", "s", "--domain", "biomedicine")
    engine(home, "seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", "s")
    engine(home, "seeds", "hold-out", "--project", "s", "--fraction", "0.2")
    engine(home, "corpus", "import", str(ROOT / "seeds" / "corpus" / "biomedicine"), "--project", "s")
    t0 = time.perf_counter()
    engine(home, "generate", "--project", "s", "--target", str(target), "--seed", "7", "--prompt-style", style,
           "--grounded", grounded)  # fmt: skip
    seconds = time.perf_counter() - t0
    db = sqlite3.connect(home / "selfspec.db")
    prompts = db.execute("SELECT count(*) FROM gen_prompts").fetchone()[0]
    reasons = dict(db.execute("SELECT reason, count(*) FROM candidates WHERE status = 'dropped' GROUP BY reason"))
    rows = db.execute("SELECT output, provenance FROM examples").fetchall()
    labelled = sum("label_logprobs" in json.loads(p) for _, p in rows)
    return {
        "prompts": prompts,
        "kept per prompt": round(target / prompts, 3) if prompts else 0.0,
        "examples/min": round(60 * len(rows) / seconds, 2),
        "mean answer chars": round(sum(len(o) for o, _ in rows) / len(rows), 1) if rows else 0,
        "answered by label": labelled,
        "dropped": reasons,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, default=16)
    ap.add_argument("--grounded", default="auto", choices=["auto", "on", "off"])
    a = ap.parse_args()
    print(f"target {a.target}, grounded {a.grounded}, load {os.getloadavg()[0]:.2f}", flush=True)
    found = {}
    for style in ("chat", "completion"):
        found[style] = one(style, a.target, a.grounded)
        print(f"{style:<11} {found[style]}", flush=True)
    ratio = found["chat"]["kept per prompt"] / max(found["completion"]["kept per prompt"], 1e-9)  # type: ignore[operator]
    print(f"load at end {os.getloadavg()[0]:.2f}")
    print(f"chat vs completion, kept tasks per prompt: {ratio:.2f}x")


if __name__ == "__main__":
    main()
