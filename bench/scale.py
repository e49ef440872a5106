"""Scaling benchmark: training on 1 vs N processes (torchrun), generation on 1 vs N Ray workers.

On the embedded default, through the CLI as a user runs it, in one session:
- training: the same adapter settings (the shipped biomedicine seeds imported as accepted
  examples, --max-steps) trained once in one process and once with --processes N; printed: the
  tokens/s each run measured and their ratio;
- generation: the same generation (seed, target, settings) in one process, on `--ray local:1` and
  on `--ray local:N`; printed: examples/min of each (from the runs' own summaries) and the ratios.

On a CPU machine the processes share its cores, so N processes do not give N times the rate: the
figure says what spreading costs or gains here. On a machine with N GPUs, run it with --device cuda.

    .venv/bin/python bench/scale.py [--processes 2] [--steps 6] [--target 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, fmt: str = "text") -> str:
    r = subprocess.run([sys.executable, "-m", "engine", "--format", fmt, *args], capture_output=True, text=True,
                       cwd=ROOT, env=os.environ)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def summary(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "finished":
            return dict(event["summary"])
    raise SystemExit("no summary in the engine's output")


def training(args: argparse.Namespace) -> tuple[float, float]:
    cli("project", "create", "train", "--domain", "biomedicine")
    seeds = ROOT / "seeds" / "biomedicine.jsonl"
    rows = [json.loads(x) for x in seeds.read_text().splitlines() if x.strip()]
    data = Path(os.environ["SELFSPEC_HOME"]) / "train.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in rows))
    cli("dataset", "import", str(data), "--project", "train", "--as", "accepted")
    common = ["--max-steps", str(args.steps), "--batch-size", "8", "--micro-batch", "2", "--device", args.device]
    rates = []
    for name, extra in (("one", []), ("spread", ["--new", "--processes", str(args.processes)])):
        out = summary(cli("train", "--project", "train", "--name", name, *common, *extra, fmt="json"))
        rates.append(float(out["tokens_per_s"]))
        print(f"training, {out['processes']} process(es): {out['tokens_per_s']} tokens/s over {out['steps']} steps",
              flush=True)  # fmt: skip
    return rates[0], rates[1]


def generation(args: argparse.Namespace) -> dict[str, float]:
    settings = ["--target", str(args.target), "--seed", "3", "--batch-size", "4", "--max-prompts", str(4 * args.target)]
    rates = {}
    for name, extra in (("plain", []), ("ray1", ["--ray", "local:1"]), ("rayn", ["--ray", f"local:{args.processes}"])):
        cli("project", "create", name, "--domain", "biomedicine")
        cli("seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", name)
        cli("corpus", "import", str(ROOT / "seeds" / "corpus" / "biomedicine"), "--project", name)
        out = summary(cli("generate", "--project", name, *settings, *extra, fmt="json"))
        made, seconds = out.get("examples_this_run", 0), out.get("seconds_this_run", 0)
        rates[name] = 60 * made / seconds if seconds else 0.0
        print(f"generation, {name}: {made} examples in {seconds:.0f} s = {rates[name]:.2f} examples/min", flush=True)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2, help="training processes and Ray workers")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per training run")
    ap.add_argument("--target", type=int, default=8, help="examples per generation run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--home", help="work here (default: a new temporary folder)")
    args = ap.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="scale-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({"SELFSPEC_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    print(f"home {home}; cores {os.cpu_count()}; load {os.getloadavg()[0]:.2f}", flush=True)
    one, spread = training(args)
    gen = generation(args)
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    print(f"training tokens/s: {one:.1f} on 1 process, {spread:.1f} on {args.processes}: {spread / one:.2f}x")
    ray_ratio = gen["rayn"] / gen["ray1"] if gen["ray1"] else 0.0
    plain_ratio = gen["rayn"] / gen["plain"] if gen["plain"] else 0.0
    print(f"generation examples/min: {gen['plain']:.2f} in one process, {gen['ray1']:.2f} on 1 Ray worker, "
          f"{gen['rayn']:.2f} on {args.processes}: {ray_ratio:.2f}x over 1 worker, "
          f"{plain_ratio:.2f}x over one process")  # fmt: skip
    print(f"scale: training {spread / one:.2f}x, generation {ray_ratio:.2f}x")


if __name__ == "__main__":
    main()
