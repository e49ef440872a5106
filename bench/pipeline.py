"""The whole pipeline on the embedded default, timed stage by stage, ending with base vs expert.

Runs the real CLI in a fresh SELFSPEC_HOME, as a user would: create a project on the embedded
SmolLM2-135M, import the shipped biomedicine seeds and hold 20% of them out, import the demo
corpus, generate N examples (default 200), accept them all (the bench stands in for the person
reviewing), LoRA-train with the papers' settings, export to GGUF Q8_0 with the parity check, and
evaluate base vs the Q8_0 expert on PubMedQA's labelled dev set (../shared, 500 items), the
held-out seeds and the shipped off-domain set. Prints each stage's wall time and share, then
the evaluation table; the expert − base difference is the ratio this bench reports, against
the base measured in the same session.

    python bench/pipeline.py [--examples 200] [--epochs 3] [--eval-limit N] [--home DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBMEDQA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"
PROJECT = "bench"


def run(home: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "SELFSPEC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine", "--format", "text", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"stage failed ({done.returncode}): {' '.join(args)}")
    return seconds, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eval-limit", type=int, help="PubMedQA items to score (default: all 500)")
    ap.add_argument("--home", help="SELFSPEC_HOME to use (default: a fresh temporary folder)")
    ap.add_argument("--json", help="write timings and the evaluation results here")
    a = ap.parse_args()
    if not PUBMEDQA.exists():
        raise SystemExit(f"{PUBMEDQA}: not found (the bench evaluates on PubMedQA's dev set from ../shared)")
    home = Path(a.home) if a.home else Path(tempfile.mkdtemp(prefix="selfspec-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    shipped = ROOT / "seeds"
    eval_json = home / "eval.json"
    limit = ["--limit", str(a.eval_limit)] if a.eval_limit else []
    stages: list[tuple[str, list[str]]] = [
        ("project", ["project", "create", PROJECT, "--domain", "biomedicine"]),
        ("seeds", ["seeds", "import", str(shipped / "biomedicine.jsonl"), "--project", PROJECT]),
        ("hold-out", ["seeds", "hold-out", "--project", PROJECT, "--fraction", "0.2"]),
        ("corpus", ["corpus", "import", str(shipped / "corpus" / "biomedicine"), "--project", PROJECT]),
        ("generate", ["generate", "--project", PROJECT, "--target", str(a.examples)]),
        ("review", ["review", "accept", "--project", PROJECT, "--all"]),
        ("train", ["train", "--project", PROJECT, "--epochs", str(a.epochs)]),
        ("export", ["export", "--project", PROJECT, "--quant", "q8_0"]),
        (
            "evaluate",
            ["eval", "run", "--project", PROJECT, "--pubmedqa", str(PUBMEDQA), *limit, "--json", str(eval_json)],
        ),
    ]
    timings: dict[str, float] = {}
    outputs: dict[str, str] = {}
    print(f"home: {home}   examples: {a.examples}   epochs: {a.epochs}", flush=True)
    for name, args in stages:
        seconds, out = run(home, *args)
        timings[name] = seconds
        outputs[name] = out
        print(f"{name:<10} {seconds:8.1f} s", flush=True)
    total = sum(timings.values())
    print(f"{'total':<10} {total:8.1f} s\n")
    for name, seconds in timings.items():
        print(f"  {name:<10} {100 * seconds / total:5.1f}%")
    print()
    for line in outputs["generate"].splitlines():
        if line.startswith(("examples:", "kept:", "dropped", "tokens_per_s")):
            print(line)
    for line in outputs["export"].splitlines():
        if line.startswith("parity_"):
            print(line)
    print()
    print(outputs["evaluate"])
    results = json.loads(eval_json.read_text())
    if a.json:
        report = {"timings_s": timings, "examples": a.examples, "results": results}
        Path(a.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
