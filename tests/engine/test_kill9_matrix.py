"""kill -9 at random points of every long stage, five times each, then the same command again:
the store must equal an uninterrupted run's (rows equal, no duplicates), pass the integrity
check, hold no stale lock, and show the killed run as interrupted.

Each stage is set up once in a template home; every round works on a copy of it (which also
exercises a copied home: the store keeps paths relative to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_engine, talk_project

ROUNDS = 5
pytestmark = pytest.mark.slow


def _engine(home: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {**os.environ, "SELFSPEC_HOME": str(home), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "--format", "text", *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(home: Path, args: list[str], env: dict[str, str] | None = None, timeout: int = 900) -> float:
    start = time.monotonic()
    proc = _engine(home, args, env)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return time.monotonic() - start


def _finished_before_kill(home: Path, stage: str) -> bool:
    """The kill landed after the run had recorded its end (while the process was exiting)."""
    if not (home / "selfspec.db").exists():
        return False
    con = sqlite3.connect(home / "selfspec.db")
    try:
        last = con.execute("SELECT status FROM runs WHERE stage = ? ORDER BY id DESC LIMIT 1", [stage]).fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()
    return bool(last) and last[0] == "finished"


def _checks(home: Path, stage: str) -> None:
    con = sqlite3.connect(home / "selfspec.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
        states = [s for (s,) in con.execute("SELECT status FROM runs WHERE stage = ? ORDER BY id", [stage])]
        assert states and states[-1] == "finished", states
        assert all(s == "interrupted" for s in states[:-1]), states
    finally:
        con.close()


def kill_matrix(
    tmp_path: Path,
    template: Path,
    args: list[str],
    stage: str,
    dump: Callable[[Path], object],
    env: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Run straight once, then ROUNDS killed-and-resumed runs; every dump must equal the straight one.

    Returns the home of the straight run."""
    straight = tmp_path / "straight"
    shutil.copytree(template, straight)
    duration = _finish(straight, args, env)
    want = dump(straight)
    _checks(straight, stage)
    rng = random.Random(seed)
    points = []
    for i in range(ROUNDS):
        home = tmp_path / f"round-{i}"
        scale = 0.9
        while True:  # a run that ends before its kill does not count: kill earlier
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(template, home)
            delay = rng.uniform(0.05, scale) * duration
            proc = _engine(home, args, env)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if not _finished_before_kill(home, stage):
                    break
            proc.wait()
            scale /= 2
        points.append(round(delay, 2))
        _finish(home, args, env)
        assert dump(home) == want, f"round {i}: killed at {delay:.2f}s of {duration:.2f}s differs"
        _checks(home, stage)
        shutil.rmtree(home)
    print(f"{stage}: straight {duration:.1f}s, killed at {points}")
    return straight


def _rows(home: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(home / "selfspec.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- generate ----------------------------------------------------------------------------------


def test_generate_kill_9_matrix(tmp_path: Path, monkeypatch) -> None:
    from tests.helpers import dump, make_project

    template = tmp_path / "template"
    template.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(template))
    make_project()
    args = ["generate", "--project", "t", "--target", "12", "--seed", "21"]
    kill_matrix(
        tmp_path,
        template,
        args,
        "generate",
        lambda h: dump(h / "selfspec.db"),
        {"SELFSPEC_FAKE_GEN_DELAY": "0.03"},
        seed=1,
    )


# ---- corpus import -----------------------------------------------------------------------------


def test_corpus_import_kill_9_matrix(tmp_path: Path, monkeypatch) -> None:
    from tests.helpers import write_corpus

    template = tmp_path / "template"
    template.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(template))

    assert run_engine("project", "create", "c", "--domain", "medicine", "--embedder", "fake-hash").returncode == 0
    folder = write_corpus(tmp_path / "docs", n_files=6, paras=30)

    def dump(home: Path) -> object:
        docs = _rows(home, "SELECT sha256, source, title, chars FROM documents ORDER BY sha256")
        chunks = _rows(
            home,
            "SELECT d.sha256, c.ordinal, c.text, c.char_start, c.char_end, hex(v.vector) FROM chunks c"
            " JOIN documents d ON d.id = c.document_id LEFT JOIN chunk_vectors v ON v.chunk_id = c.id"
            " ORDER BY d.sha256, c.ordinal",
        )
        assert all(row[-1] for row in chunks), "a chunk without a vector"
        index = home / "projects" / "c" / "index" / "chunks.hnsw"
        assert index.exists()
        return docs, chunks

    kill_matrix(
        tmp_path,
        template,
        ["corpus", "import", str(folder), "--project", "c"],
        "corpus import",
        dump,
        {"SELFSPEC_FAKE_EMBED_DELAY": "0.05"},
        seed=2,
    )


# ---- train -------------------------------------------------------------------------------------


def _adapter_tensors(folder: Path) -> dict[str, str]:
    from safetensors.numpy import load_file

    return {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in load_file(str(folder)).items()}


def test_train_kill_9_matrix(tmp_path: Path, monkeypatch) -> None:
    from engine.stages.models import register
    from engine.store import open_store, projects, review
    from engine.store.review import Filter
    from tests.helpers import build_tiny_llama, fill

    template = tmp_path / "template"
    template.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(template))
    db = open_store()
    register(db, build_tiny_llama(tmp_path / "tiny"), "tiny")
    p = projects.create(db, "tp", "biomedicine", "tiny", {})
    ids = fill(db, p, 24, seed=3)
    review.set_status(db, p, Filter(ids=tuple(ids[:20])), "accepted", "x")
    db.close()
    args = ["train", "--project", "tp", "--name", "k", "--lr", "5e-3", "--batch-size", "4", "--micro-batch", "2"]
    args += ["--epochs", "3", "--checkpoint-every", "2"]

    def dump(home: Path) -> object:
        steps = _rows(home, "SELECT step, epoch, loss, lr, tokens, val_loss FROM train_steps ORDER BY step")
        status = _rows(home, "SELECT name, status, examples, fingerprint FROM adapters")
        weights = _adapter_tensors(
            home / "projects" / "tp" / "adapters" / "k" / "adapter" / "adapter_model.safetensors"
        )
        return steps, status, weights

    kill_matrix(tmp_path, template, args, "train", dump, seed=3)


# ---- export ------------------------------------------------------------------------------------


def test_export_kill_9_matrix(tmp_path: Path, monkeypatch) -> None:
    from transformers import AutoTokenizer

    from engine.stages.models import DEFAULT_MODEL, builtin_path, register
    from engine.store import open_store, projects, review
    from engine.store.review import Filter
    from tests.helpers import build_tiny_llama, fill

    template = tmp_path / "template"
    template.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(template))
    gguf = builtin_path(DEFAULT_MODEL)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = build_tiny_llama(tmp_path / "smol-tiny", tokenizer=tok, hidden=64)
    db = open_store()
    register(db, model, "st")
    p = projects.create(db, "ex", "biomedicine", "st", {})
    ids = fill(db, p, 8, seed=2)
    review.set_status(db, p, Filter(ids=tuple(ids)), "accepted", "x")
    db.close()
    r = run_engine("train", "--project", "ex", "--batch-size", "2", "--micro-batch", "1", "--max-steps", "1")
    assert r.returncode == 0, r.stderr

    def dump(home: Path) -> object:
        folder = home / "projects" / "ex" / "exports" / "expert-1"
        files = {f.name: _sha(f) for f in folder.glob("*.gguf")}
        assert set(files) == {"model-f16.gguf", "model-q8_0.gguf"}
        assert not list(folder.glob("*.partial"))
        done = _rows(home, "SELECT status, parity FROM exports ORDER BY id")
        assert done[-1][0] == "done"
        return files, json.loads(done[-1][1])

    straight = kill_matrix(
        tmp_path, template, ["export", "--project", "ex", "--quant", "q8_0", "--no-lora"], "export", dump, seed=4
    )

    # a moved home keeps working: copy it, delete the original, chat and evaluate from the copy
    moved = tmp_path / "elsewhere" / "home"
    shutil.copytree(straight, moved)
    shutil.rmtree(straight)
    env = {"SELFSPEC_HOME": str(moved)}
    chat_args = ["chat", "--project", "ex", "--model", "expert-1:q8_0", "--max-tokens", "8", "--temperature", "0"]
    chat = run_engine(*chat_args, env=env, timeout=300, input="Name a statin.\n/exit\n")
    assert chat.returncode == 0, chat.stderr
    assert str(straight) not in chat.stdout + chat.stderr
    data = tmp_path / "moved.jsonl"
    data.write_text(
        json.dumps({"instruction": "Is insulin a hormone?", "output": "yes", "labels": ["yes", "no"]}) + "\n"
    )
    models = ["--model", "expert-1:f16", "--model", "expert-1:q8_0", "--model", "hf:expert-1"]
    eval_args = ["eval", "run", "--project", "ex", *models, "--data", str(data), "--no-seeds", "--no-off-domain"]
    ev = run_engine(*eval_args, env=env, timeout=600)
    assert ev.returncode == 0, ev.stderr
    assert "expert-1:q8_0" in ev.stdout and str(straight) not in ev.stdout + ev.stderr
    con = sqlite3.connect(moved / "selfspec.db")
    stored = [p for (p,) in con.execute("SELECT path FROM adapters UNION ALL SELECT path FROM exports")]
    con.close()
    assert stored and all(not p.startswith("/") for p in stored), stored


# ---- eval --------------------------------------------------------------------------------------


def test_eval_kill_9_matrix(tmp_path: Path, monkeypatch) -> None:
    from engine.store import open_store

    template = tmp_path / "template"
    template.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(template))
    db = open_store()
    talk_project(db, copy=True)
    db.close()
    data = tmp_path / "items.jsonl"
    rows = [
        {
            "instruction": f"Is drug {i} an antihypertensive?",
            "output": "yes" if i % 2 else "no",
            "labels": ["yes", "no"],
        }
        for i in range(10)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "run", "--project", "talk", "--data", str(data), "--no-seeds", "--limit", "8", "--max-tokens", "8"]

    def dump(home: Path) -> object:
        items = _rows(home, "SELECT dataset, model, item_key, gold, prediction, score FROM eval_items ORDER BY 1, 2, 3")
        assert len(items) == len({r[:3] for r in items})
        return items, _rows(home, "SELECT status FROM evals")

    kill_matrix(tmp_path, template, args, "eval run", dump, seed=5)
