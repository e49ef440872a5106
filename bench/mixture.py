"""Mixture benchmark: does a two-expert mixture keep each expert's gain without its losses?

On the embedded default: two projects (the shipped biomedicine and finance seeds, 20% of each held
out), an expert per project trained on that project's remaining seeds (human-written: a stand-in
for generated data that fits a session on 2 cores), a mixture of the two with its router trained
on their union, then `mixture eval`: base, each expert alone, the mixture per token and per
prompt, on both domains' held-out seeds and the off-domain set. Everything runs through the CLI,
as a user would; `--home` keeps (and resumes) the work.

Printed: the evaluation table, the routing shares per domain, and per domain and model the mean
of the main metric over the sets of that domain (in-domain) and the off-domain figure.

    .venv/bin/python bench/mixture.py [--home DIR] [--epochs 2] [--router-epochs 1] [--limit 20]
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


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "engine", "--format", "text", *args], capture_output=True, text=True,
                       cwd=ROOT, env=os.environ)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def held_out_instructions(project: str) -> set[str]:
    sys.path.insert(0, str(ROOT))
    from engine.store import open_store, projects, seeds

    db = open_store()
    try:
        return {s.instruction.strip() for s in seeds.held_out(db, projects.get(db, project))}
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="keep the work here (a rerun resumes)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each expert")
    ap.add_argument("--router-epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=20, help="items per evaluation set")
    args = ap.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="mixture-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({"SELFSPEC_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    print(f"home {home}, load {os.getloadavg()[0]:.2f}", flush=True)
    listed = cli("project", "list")
    for name, domain in (("bio", "biomedicine"), ("fin", "finance")):
        if f"{name} " not in listed:
            cli("project", "create", name, "--domain", domain)
            seeds = ROOT / "seeds" / f"{domain}.jsonl"
            cli("seeds", "import", str(seeds), "--project", name)
            cli("seeds", "hold-out", "--project", name, "--fraction", "0.2")
            held = held_out_instructions(name)  # never trained on: they are the evaluation
            rows = [json.loads(x) for x in seeds.read_text().splitlines() if x.strip()]
            data = home / f"{name}-train.jsonl"
            keep = [r for r in rows if r["instruction"].strip() not in held]
            print(f"{name}: {len(keep)} training rows, {len(held)} held out", flush=True)
            data.write_text(
                "".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in keep)
            )
            cli("dataset", "import", str(data), "--project", name, "--as", "accepted")
        if "e1" not in cli("adapters", "list", "--project", name):
            cli("train", "--project", name, "--name", "e1", "--epochs", str(args.epochs), "--batch-size", "8",
                "--micro-batch", "4")  # fmt: skip
        print(f"expert {name}/e1 trained", flush=True)
    if "duo" not in cli("mixture", "list"):
        cli("mixture", "create", "duo", "--expert", "bio/e1", "--expert", "fin/e1")
    if " done " not in next((x for x in cli("mixture", "list").splitlines() if x.startswith("duo")), ""):
        print(cli("mixture", "train", "duo", "--epochs", str(args.router_epochs)), flush=True)
    table = cli("mixture", "eval", "duo", "--limit", str(args.limit), "--max-tokens", "48")
    print(table)
    print(cli("mixture", "list"))
    summary: dict[tuple[str, str, bool], list[float]] = {}
    for line in table.splitlines():
        parts = [p for p in line.split("  ") if p.strip()]
        if len(parts) >= 6 and parts[0].strip() in ("bio", "fin"):
            domain, dataset, model, score = parts[0].strip(), parts[1].strip(), parts[3].strip(), float(parts[5])
            summary.setdefault((domain, model, "off-domain" in dataset), []).append(score)
    for (domain, model, off), scores in sorted(summary.items()):
        where = "off-domain" if off else "in-domain"
        print(f"{domain} {where:<10} {model:<18} mean {sum(scores) / len(scores):.4f} over {len(scores)} set(s)")


if __name__ == "__main__":
    main()
