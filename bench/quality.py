"""Does the expert beat its base? A user-like run on the embedded default, with a gold-trained ceiling.

Runs the real CLI in a fresh SELFSPEC_HOME:

1. a project whose corpus is the abstracts (contexts) of one half of PubMedQA's labelled dev set
   (../shared/data/pubmedqa/pqal_dev.json), with the shipped biomedicine seeds, 20% held out;
2. N generated examples (grounded tasks, the ss-v3 filters), kept as the filters left them
   (the bench stands in for a reviewer who accepts everything the filters kept);
3. LoRA training, export to GGUF Q8_0;
4. evaluation of base vs expert on the questions of the other half (never in the corpus), raw and
   calibrated, on the held-out seeds (classification and free-form) and on the off-domain set;
5. the ceiling: a second project trained the same way on the gold labels of the first half.

Prints the table, the data statistics (kept, dropped by reason, mean answer length, share
grounded) and last the line
`expert-base calibrated macro-F1: <signed difference>; held-out seeds ROUGE-L: <signed difference>`.

    python bench/quality.py [--examples 240] [--epochs 3] [--eval-limit N] [--no-ceiling] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import run  # noqa: E402  (the CLI in a given SELFSPEC_HOME, timed)

PUBMEDQA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"
PROJECT, CEILING = "quality", "ceiling"
INSTRUCTION = "Answer the question with yes, no or maybe, based on the abstract: {q}"


def split(home: Path, source: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """The corpus half as text files, the evaluation half as a PubMedQA file, gold labels as Alpaca."""
    raw = json.loads(source.read_text())
    ids = sorted(raw)
    random.Random(seed).shuffle(ids)
    first, second = ids[: len(ids) // 2], ids[len(ids) // 2 :]
    corpus = home / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for pmid in first:
        (corpus / f"{pmid}.txt").write_text("\n".join(raw[pmid]["CONTEXTS"]) + "\n")
    held = home / "pubmedqa-second-half.json"
    held.write_text(json.dumps({pmid: raw[pmid] for pmid in second}))
    gold = home / "gold-first-half.jsonl"
    with gold.open("w") as fh:
        for pmid in first:
            item = raw[pmid]
            rec = {
                "instruction": INSTRUCTION.format(q=item["QUESTION"].strip()),
                "input": "\n".join(c.strip() for c in item["CONTEXTS"]),
                "output": item["final_decision"],
            }
            fh.write(json.dumps(rec) + "\n")
    return corpus, held, gold


def data_stats(home: Path) -> dict[str, object]:
    db = sqlite3.connect(home / "selfspec.db")
    pid = db.execute("SELECT id FROM projects WHERE name = ?", [PROJECT]).fetchone()[0]
    gid = db.execute("SELECT max(id) FROM generations WHERE project_id = ?", [pid]).fetchone()[0]
    kept = db.execute("SELECT count(*) FROM candidates WHERE generation_id = ? AND status = 'kept'", [gid]).fetchone()[
        0
    ]
    reasons = dict(
        db.execute(
            "SELECT reason, count(*) FROM candidates WHERE generation_id = ? AND status = 'dropped'"
            " GROUP BY reason ORDER BY 2 DESC",
            [gid],
        ).fetchall()
    )
    rows = db.execute("SELECT output, provenance FROM examples WHERE project_id = ?", [pid]).fetchall()
    lengths = [len(o) for o, _ in rows]
    grounded = sum("grounded_passage_id" in json.loads(p or "{}") for _, p in rows)
    return {
        "tasks kept": kept,
        "examples": len(rows),
        "dropped by reason": reasons,
        "mean answer length (chars)": round(sum(lengths) / len(lengths), 1) if lengths else 0,
        "share grounded": round(grounded / len(rows), 3) if rows else 0,
    }


def figure(results: dict, dataset: str, metric: str) -> tuple[float, float, float] | None:  # type: ignore[type-arg]
    for entry in results["datasets"]:
        if entry["dataset"].startswith(dataset) and metric in entry.get("difference", {}):
            return tuple(entry["difference"][metric])  # type: ignore[return-value]
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=240, help="examples to generate (240: about 90 min here)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eval-limit", type=int, help="PubMedQA questions to score (default: the whole half)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the gold-trained ceiling")
    ap.add_argument("--home", help="SELFSPEC_HOME (default: a fresh temporary folder; reuse one to resume)")
    ap.add_argument("--pubmedqa", type=Path, default=PUBMEDQA, help="PubMedQA's labelled dev set")
    a = ap.parse_args()
    if not a.pubmedqa.exists():
        raise SystemExit(f"{a.pubmedqa}: not found (the bench reads PubMedQA's dev set from ../shared)")
    home = Path(a.home) if a.home else Path(tempfile.mkdtemp(prefix="selfspec-quality-"))
    home.mkdir(parents=True, exist_ok=True)
    corpus, held, gold = split(home, a.pubmedqa)
    limit = ["--limit", str(a.eval_limit)] if a.eval_limit else []
    load = os.getloadavg()[0]
    print(f"home: {home}  examples: {a.examples}  epochs: {a.epochs}  load at start: {load:.2f}", flush=True)
    out = home.parent / f"{home.name}-results"  # the store refuses output files inside its home
    out.mkdir(exist_ok=True)
    main_json, ceiling_json = out / "eval.json", out / "ceiling.json"
    stages = [
        ("project", ["project", "create", PROJECT, "--domain", "biomedicine"]),
        ("seeds", ["seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", PROJECT]),
        ("hold-out", ["seeds", "hold-out", "--project", PROJECT, "--fraction", "0.2"]),
        ("corpus", ["corpus", "import", str(corpus), "--project", PROJECT]),
        ("generate", ["generate", "--project", PROJECT, "--target", str(a.examples)]),
        ("review", ["review", "accept", "--project", PROJECT, "--all"]),
        ("train", ["train", "--project", PROJECT, "--epochs", str(a.epochs), "--name", "expert"]),
        ("export", ["export", "--project", PROJECT, "--adapter", "expert", "--quant", "q8_0", "--no-lora"]),
        ("evaluate", ["eval", "run", "--project", PROJECT, "--pubmedqa", str(held), *limit, "--json", str(main_json)]),
    ]
    if not a.no_ceiling:
        stages += [
            ("ceiling project", ["project", "create", CEILING, "--domain", "biomedicine"]),
            ("ceiling data", ["dataset", "import", str(gold), "--project", CEILING, "--as", "accepted"]),
            ("ceiling train", ["train", "--project", CEILING, "--epochs", str(a.epochs), "--name", "gold"]),
            ("ceiling export", ["export", "--project", CEILING, "--adapter", "gold", "--quant", "q8_0", "--no-lora"]),
            (
                "ceiling eval",
                ["eval", "run", "--project", CEILING, "--pubmedqa", str(held), *limit, "--no-seeds"]
                + ["--json", str(ceiling_json)],
            ),
        ]
    # stages finished by an earlier run on this home are not run again (a rerun resumes the bench)
    done_file = out / "stages.json"
    done: dict[str, dict[str, object]] = json.loads(done_file.read_text()) if done_file.exists() else {}
    timings: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for name, args in stages:
        if name in done:
            seconds, text = float(done[name]["seconds"]), str(done[name]["output"])  # type: ignore[arg-type]
            print(f"{name:<16} {seconds:8.1f} s (an earlier run)", flush=True)
        else:
            seconds, text = run(home, *args)
            done[name] = {"seconds": round(seconds, 1), "output": text}
            done_file.write_text(json.dumps(done, indent=1))
            print(f"{name:<16} {seconds:8.1f} s", flush=True)
        timings[name], outputs[name] = seconds, text
    print(f"{'total':<16} {sum(timings.values()):8.1f} s   load at end: {os.getloadavg()[0]:.2f}\n")
    print("expert vs base:\n" + outputs["evaluate"])
    if not a.no_ceiling:
        print("ceiling (trained on the gold labels of the corpus half) vs base:\n" + outputs["ceiling eval"])
    print("data:")
    for key, value in data_stats(home).items():
        print(f"  {key}: {value}")
    results = json.loads(main_json.read_text())
    f1 = figure(results, "pubmedqa", "macro_f1_xfit")
    rouge = figure(results, "held-out seeds (free-form)", "rouge_l")
    seeds_f1 = figure(results, "held-out seeds (yes/no/maybe)", "macro_f1_xfit")
    off = results.get("off_domain_mean_difference")
    if not a.no_ceiling:
        ceiling = figure(json.loads(ceiling_json.read_text()), "pubmedqa", "macro_f1_xfit")
        print(f"ceiling calibrated macro-F1: {ceiling[0]:+.3f}" if ceiling else "ceiling: no figure")
    if seeds_f1:
        d, lo, hi = seeds_f1
        print(f"held-out seeds (yes/no/maybe) calibrated macro-F1: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if off is not None:
        print(f"off-domain difference: {off:+.3f}")
    show = lambda d: f"{d[0]:+.3f}" if d else "n/a"  # noqa: E731
    print(f"expert-base calibrated macro-F1: {show(f1)}; held-out seeds ROUGE-L: {show(rouge)}")


if __name__ == "__main__":
    main()
