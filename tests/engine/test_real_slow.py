"""The real path: all-MiniLM-L6-v2 embeddings, hnswlib, the demo, and the `selfspec-tui` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.stages.context import Context
from engine.stages.corpus import Searcher
from engine.store import projects
from tests.helpers import ROOT, SHARED, counts, run_engine

pytestmark = pytest.mark.slow
PUBMEDQA = SHARED / "data" / "pubmedqa" / "pqal_dev.json"


def real_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SELFSPEC_PLUGINS"}
    return env


def test_real_embedder_retrieves_the_right_pubmedqa_abstract(db, tmp_path: Path) -> None:
    if not PUBMEDQA.is_file():
        pytest.skip("shared PubMedQA data not present")
    items = list(json.loads(PUBMEDQA.read_text()).items())[:40]
    corpus = tmp_path / "pubmed.jsonl"
    with corpus.open("w") as fh:
        for pmid, item in items:
            fh.write(json.dumps({"text": " ".join(item["CONTEXTS"]), "title": pmid}) + "\n")
    projects.create(db, "pubmed", "biomedicine", "smollm2-135m-instruct")
    result = subprocess.run(
        [sys.executable, "-m", "engine", "--format", "json", "corpus", "import", str(corpus), "--project", "pubmed"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=real_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    os.environ.pop("SELFSPEC_PLUGINS", None)
    project = projects.get(db, "pubmed")
    searcher = Searcher(Context(db=db, emit=lambda e: None, project=project))
    hits_at_3 = 0
    for pmid, item in items:
        hits = searcher.search(item["QUESTION"], 3)
        hits_at_3 += any(h.chunk.source.endswith(f":{[p for p, _ in items].index(pmid) + 1}") for h in hits)
    assert hits_at_3 / len(items) >= 0.8, hits_at_3


def test_demo_headless_end_to_end_and_rerun(home: Path) -> None:
    exe = shutil.which("selfspec-tui", path=str(Path(sys.executable).parent))
    assert exe, "the selfspec-tui entry point is not installed"
    first = subprocess.run([exe, "demo"], capture_output=True, text=True, env=real_env(), timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "seeds: 166" in first.stdout and "top_passage:" in first.stdout
    assert "examples: 6" in first.stdout and "respond: 6/6" in first.stderr
    assert "adapter: demo-expert" in first.stdout and "train: 2/2 steps" in first.stderr
    loss = float(first.stdout.split("train_loss:")[1].split()[0])
    assert 0 < loss < 10
    assert "parity_f16: tokens 100%, top-1" in first.stdout and "parity_q8_0: tokens 100%" in first.stdout
    f16_top1 = float(first.stdout.split("parity_f16: tokens 100%, top-1 ")[1].split("%")[0])
    assert f16_top1 >= 95.0
    assert first.stdout.split("base_answer:")[1].split("\n")[0].strip()
    assert first.stdout.split("expert_answer:")[1].split("\n")[0].strip()
    assert "cardiovascular.md" in first.stdout.split("top_passage:")[1]
    # it ends with the evaluation: held-out seeds and the off-domain set, base vs the Q8_0 expert
    assert "held out 36 seeds for the evaluation; 130 remain for generation" in first.stderr
    table = first.stdout.split("demo-expert:q8_0 − base")[1]
    assert "held-out seeds" in table and "general (off-domain) [off-domain]" in table and "macro_f1" in table
    assert "macro_f1 (cross-fit bias)" in table and "macro_f1 (contextual)" in table and "gold: " in table
    # the headline is a set of at least 20 items: the 21 held-out yes/no/maybe seeds
    assert "headline: held-out seeds (yes/no/maybe) (n=21) macro_f1 (cross-fit bias):" in first.stdout
    assert "evaluation: 1" in first.stdout and "off_domain_difference:" in first.stdout
    assert "Traceback" not in first.stderr
    again = subprocess.run([exe, "demo"], capture_output=True, text=True, env=real_env(), timeout=900)
    assert again.returncode == 0
    assert "(0 new)" in again.stderr and "adapter 'demo-expert' is already trained" in again.stderr
    assert "evaluation 1 already scored these models" in again.stderr and "evaluation: 1" in again.stdout
    search = subprocess.run(
        [exe, "corpus", "search", "What is the first-line treatment for anaphylaxis?", "--project", "demo", "-k", "2"],
        capture_output=True,
        text=True,
        env=real_env(),
        timeout=300,
    )
    assert search.returncode == 0 and "adrenaline" in search.stdout.lower()
    _round_two(exe)


def _round_two(exe: str) -> None:
    """Iterative self-specialization on the demo: the expert answers the same tasks again, a second
    adapter trains on them, and one evaluation shows base, round 1 and round 2."""
    run = lambda *a: subprocess.run([exe, *a], capture_output=True, text=True, env=real_env(), timeout=900)  # noqa: E731
    r = run(
        "generate",
        "--project",
        "demo",
        "--new",
        "--tasks-from",
        "1",
        "--respond-with",
        "demo-expert:q8_0",
        "--calibration-seeds",
        "6",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (
        "took the 6 kept tasks of generation 1" in r.stderr and "answering with the expert demo-expert:q8_0" in r.stderr
    )
    assert "examples: 6" in r.stdout or "examples: 5" in r.stdout  # an answer may fail the answer filters
    assert run("review", "accept", "--project", "demo", "--generation", "2").returncode == 0
    r = run("train", "--project", "demo", "--name", "round2", "--max-steps", "2", "--new", "--generation", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "new adapter 'round2': 6 examples" in r.stderr or "new adapter 'round2': 5 examples" in r.stderr
    assert run("export", "--project", "demo", "--adapter", "round2", "--quant", "q8_0", "--no-parity").returncode == 0
    r = run(
        "eval",
        "run",
        "--project",
        "demo",
        "--no-off-domain",
        "--limit",
        "8",
        "--max-tokens",
        "16",
        "--model",
        "base",
        "--model",
        "demo-expert:q8_0",
        "--model",
        "round2:q8_0",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "demo-expert:q8_0 − base" in r.stdout and "round2:q8_0 − base" in r.stdout


def test_cli_walkthrough(home: Path, tmp_path: Path) -> None:
    exe = shutil.which("selfspec-tui", path=str(Path(sys.executable).parent))
    assert exe
    run = lambda *a: subprocess.run([exe, *a], capture_output=True, text=True, env=real_env(), timeout=300)  # noqa: E731
    assert run("project", "create", "fin", "--domain", "finance").returncode == 0
    assert run("project", "create", "../x", "--domain", "finance").returncode == 2
    listed = run("project", "list")
    assert "fin" in listed.stdout and "finance" in listed.stdout
    seeds_file = ROOT / "seeds" / "finance.jsonl"
    imported = run("seeds", "import", str(seeds_file), "--project", "fin")
    assert imported.returncode == 0 and "added: 158" in imported.stdout
    assert "numeric_reasoning" in run("seeds", "list", "--project", "fin", "--task-type", "numeric_reasoning").stdout
    assert run("project", "delete", "fin").returncode == 2
    assert run("project", "delete", "fin", "--yes").returncode == 0
    doctor = run("doctor")
    assert doctor.returncode == 0 and "llama_cpp" in doctor.stdout and "bitsandbytes_4bit" in doctor.stdout
    assert run("nonsense").returncode == 2


def test_engine_json_events_stream(db, project, tmp_path: Path) -> None:
    result = run_engine("runs", "list")
    assert result.returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "engine", "doctor"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["started", "result", "finished"]
    assert events[1]["data"]["checks"]["hnswlib"]["ok"] is True
    assert counts(db)["projects"] == 1
