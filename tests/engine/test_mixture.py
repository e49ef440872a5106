"""Mixtures (Self-MoE) through the store and the CLI, on the tiny random Llama: two projects' experts,
refusals named, the router trained with progress, cancel/resume and kill -9/resume giving the
losses of a straight run, routing shares stored per domain, and a routed answer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine.stages.context import Interrupted
from engine.stages.mixture import create, open_router_training, train_router
from engine.stages.train import open_training, run_training
from engine.store import mixtures, projects, review
from engine.store.review import Filter
from tests.engine.test_train import FAST, context
from tests.helpers import ROOT, fill, run_engine

ROUTER = {"learning_rate": 5e-2, "batch_size": 2, "micro_batch": 1, "epochs": 2, "checkpoint_every": 3}


@pytest.fixture
def two_experts(db, tiny_folder):
    from engine.stages.models import register

    register(db, tiny_folder, "tiny")
    for name, domain, seed in (("bio", "biomedicine", 3), ("fin", "finance", 4)):
        p = projects.create(db, name, domain, "tiny", {})
        ids = fill(db, p, 10, seed=seed)
        review.set_status(db, p, Filter(ids=tuple(ids)), "accepted", "x")
        run_training(context(db, p), open_training(context(db, p), {**FAST, "epochs": 1}, "e1", None, False))
    return db


def steps(db, name: str) -> list[tuple[int, float]]:
    return [(s.step, s.loss) for s in mixtures.steps(db, mixtures.by_name(db, name).id)]


def test_create_refuses_what_cannot_be_mixed_and_names_it(two_experts) -> None:
    r = run_engine("mixture", "create", "m", "--expert", "bio/e1")
    assert r.returncode == 2 and "at least two experts" in r.stderr
    r = run_engine("mixture", "create", "m", "--expert", "bio/e1", "--expert", "nope/e1")
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = run_engine("mixture", "create", "m", "--expert", "bio/e1", "--expert", "bio/e1")
    assert r.returncode == 2 and "named twice" in r.stderr
    r = run_engine("mixture", "create", "../x", "--expert", "bio", "--expert", "fin")
    assert r.returncode == 2 and "invalid mixture name" in r.stderr
    r = run_engine("mixture", "create", "m", "--expert", "bio", "--expert", "fin/e1")  # bio's current expert
    assert r.returncode == 0, r.stderr
    assert mixtures.by_name(two_experts, "m").expert_names() == ["bio/e1", "fin/e1"]
    r = run_engine("mixture", "create", "m", "--expert", "bio", "--expert", "fin")
    assert r.returncode == 2 and "already exists" in r.stderr


def test_a_project_in_a_mixture_is_kept_until_the_mixture_is_deleted(two_experts, home) -> None:
    from engine import paths
    from engine.store import adapters, locks

    db = two_experts
    assert run_engine("mixture", "create", "m", "--expert", "bio/e1", "--expert", "fin/e1").returncode == 0
    m = mixtures.by_name(db, "m")
    (paths.home() / "mixtures" / "m").mkdir(parents=True, exist_ok=True)
    (paths.home() / "mixtures" / "m" / "router.safetensors").write_bytes(b"x")
    expert = paths.from_stored(m.experts[0]["path"])
    r = run_engine("project", "delete", "bio", "--yes")
    assert r.returncode == 2 and "mixture(s) m" in r.stderr and "mixture delete m --yes" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert projects.get(db, "bio") and os.path.isdir(expert)  # nothing of bio was removed
    assert [a.name for a in adapters.list_for(db, projects.get(db, "bio"))] == ["e1"]
    r = run_engine("mixture", "delete", "m")
    assert r.returncode == 2 and "--yes" in r.stderr
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live run of the mixture (an export, say) holds its lock: delete waits for it
        db.execute(
            "INSERT INTO locks (project_id, unit, pid, proc_start, command, started_at) VALUES (?, ?, ?, ?, ?, ?)",
            [projects.get(db, "bio").id, "mixture m export", child.pid, locks.proc_start(child.pid), "x", "t"],
        )
        r = run_engine("mixture", "delete", "m", "--yes")
        assert r.returncode == 2 and f"mixture m export (pid {child.pid}) is running" in r.stderr, r.stderr
        assert mixtures.by_name(db, "m").name == "m"
    finally:
        child.kill()
        child.wait()
    r = run_engine("mixture", "delete", "m", "--yes")
    assert r.returncode == 0, r.stderr
    assert mixtures.list_all(db) == [] and not (paths.home() / "mixtures" / "m").exists()
    assert os.path.isdir(expert)  # the experts stay
    assert run_engine("project", "delete", "bio", "--yes").returncode == 0
    assert [p.name for p in projects.list_all(db)] == ["fin"]


def test_router_cancel_then_resume_equals_a_straight_run(two_experts, home) -> None:
    db = two_experts
    ctx = context(db, None)
    for name in ("straight", "again"):
        create(ctx, name, ["bio/e1", "fin/e1"])
    m, cfg = open_router_training(ctx, "straight", ROUTER)
    out = train_router(ctx, m, cfg)
    assert out["steps"] == 20 and set(mixtures.by_name(db, "straight").metrics["routing"]) == {"bio", "fin"}
    want = steps(db, "straight")
    events: list = []
    ctx = context(db, None, events, stop_after=4)
    m, cfg = open_router_training(ctx, "again", ROUTER)
    with pytest.raises(Interrupted):
        train_router(ctx, m, cfg)
    assert mixtures.by_name(db, "again").status == "interrupted"
    assert any(e.get("stage") == "router" and e.get("loss") is not None and e.get("total") == 20 for e in events)
    with pytest.raises(Exception, match="other settings"):
        open_router_training(context(db, None), "again", {**ROUTER, "top_k": 2})
    m, cfg = open_router_training(context(db, None), "again", {})
    train_router(context(db, None), m, cfg)
    assert steps(db, "again") == want
    r = run_engine("mixture", "list")
    assert r.returncode == 0 and "straight" in r.stdout and "bio/e1" in r.stdout and "bio:" in r.stdout


def test_kill_9_mid_router_training_then_resume_equals_uninterrupted(two_experts, home) -> None:
    db = two_experts
    args = ["--lr", "5e-2", "--batch-size", "2", "--micro-batch", "1", "--epochs", "3", "--checkpoint-every", "4"]
    for name in ("straight", "killed"):
        assert run_engine("mixture", "create", name, "--expert", "bio", "--expert", "fin").returncode == 0
    assert run_engine("mixture", "train", "straight", *args).returncode == 0
    want = steps(db, "straight")
    cmd = [sys.executable, "-m", "engine", "--format", "text", "mixture", "train", "killed", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    con = sqlite3.connect(home / "selfspec.db")
    deadline = time.monotonic() + 120
    while (
        con.execute(
            "SELECT count(*) FROM mixture_steps s JOIN mixtures m ON m.id = s.mixture_id WHERE m.name = 'killed'"
        ).fetchone()[0]
        < 10
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "router training ended before it was killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert mixtures.by_name(db, "killed").status == "training" and len(steps(db, "killed")) < len(want)
    r = run_engine("mixture", "train", "killed")
    assert r.returncode == 0, r.stderr
    assert "resumed from checkpoint" in r.stderr and steps(db, "killed") == want
    r = run_engine("mixture", "train", "killed")
    assert r.returncode == 2 and "already trained" in r.stderr


def test_routed_answer_and_a_changed_expert_dataset_is_refused(two_experts, home) -> None:
    from pathlib import Path

    from engine import paths

    db = two_experts
    assert run_engine("mixture", "create", "m", "--expert", "bio", "--expert", "fin").returncode == 0
    r = run_engine("mixture", "chat", "m", "-q", "what is insulin?")
    assert r.returncode == 2 and "train its router first" in r.stderr
    assert run_engine("mixture", "train", "m", "--max-steps", "2").returncode == 0
    for routing in ("router", "random", "uniform"):
        r = run_engine("mixture", "chat", "m", "-q", "what is insulin?", "--routing", routing, "--max-tokens", "8")
        assert r.returncode == 0, r.stderr
        assert "preferred_expert" in r.stdout and "prompt_routing: bio/e1" in r.stdout
    assert run_engine("mixture", "create", "n", "--expert", "bio", "--expert", "fin").returncode == 0
    data = Path(paths.from_stored(mixtures.by_name(db, "n").experts[0]["path"])).parent / "data.jsonl"
    data.write_text(data.read_text() + "\n")
    r = run_engine("mixture", "train", "n")
    assert r.returncode == 2 and "changed since the expert was trained" in r.stderr
    assert mixtures.by_name(db, "n").status == "created"  # nothing half-written


def test_mixture_eval_table_has_base_each_expert_and_both_routings_per_domain(two_experts, home) -> None:
    from engine import paths
    from engine.stages.eval_data import reserve_seeds
    from engine.stages.seeds_io import read_seed_file
    from engine.store import seeds

    db = two_experts
    for name, domain in (("bio", "biomedicine"), ("fin", "finance")):
        p = projects.get(db, name)
        seeds.import_drafts(db, p, domain, read_seed_file(paths.shipped_dir() / f"{domain}.jsonl"))
        reserve_seeds(db, p, 0.2)
    assert run_engine("mixture", "create", "m", "--expert", "bio", "--expert", "fin").returncode == 0
    assert run_engine("mixture", "train", "m", "--max-steps", "2").returncode == 0
    r = run_engine("mixture", "eval", "m", "--limit", "3", "--max-tokens", "4", timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for domain in ("bio", "fin"):
        for model in ("base", "bio/e1 alone", "fin/e1 alone", "mixture (token)", "mixture (prompt)"):
            assert any(line.startswith(domain) and model in line for line in lines), (domain, model)
    token_rows = [line for line in lines if "mixture (token)" in line]
    assert token_rows and all("bio/e1 0." in line or "bio/e1 1." in line for line in token_rows)
    again = run_engine("mixture", "eval", "m", "--limit", "3", "--max-tokens", "4")
    assert again.returncode == 0 and "already scored" in again.stderr  # reused, not scored again
    assert mixtures.by_name(db, "m").metrics["evaluation"].keys() == {"bio", "fin"}


@pytest.mark.gpu
def test_router_trains_over_a_4bit_base_on_cuda(two_experts, home) -> None:
    import math

    import torch

    assert torch.cuda.is_available()
    db = two_experts
    ctx = context(db, None)
    create(ctx, "q", ["bio/e1", "fin/e1"])
    m, cfg = open_router_training(ctx, "q", {**ROUTER, "device": "cuda"})
    out = train_router(ctx, m, cfg)
    trained = mixtures.by_name(db, "q")
    assert trained.metrics["four_bit"] and trained.metrics["device"] == "cuda" and out["steps"] == 20
    assert all(math.isfinite(loss) for _, loss in steps(db, "q"))
    r = run_engine("mixture", "chat", "q", "-q", "what is insulin?", "--max-tokens", "4")
    assert r.returncode == 0 and "preferred_expert" in r.stdout, r.stderr


def test_gguf_routing_needs_the_export_and_says_so(two_experts, home) -> None:
    from engine.backends import registry

    assert registry.runtime_for("mixture-gguf").name == registry.runtime_for("mixture").name == "mixture"
    assert run_engine("mixture", "create", "m", "--expert", "bio", "--expert", "fin").returncode == 0
    assert run_engine("mixture", "train", "m", "--max-steps", "1").returncode == 0
    r = run_engine("eval", "run", "--project", "bio", "--model", "hf:base", "--model", "mix:m@gguf", "--limit", "2")
    assert r.returncode == 2 and "run `mixture export` first" in r.stderr and "Traceback" not in r.stderr
    r = run_engine("mixture", "chat", "m", "-q", "hi", "--gguf")
    assert r.returncode == 2 and "mixture export m" in r.stderr
    r = run_engine("eval", "run", "--project", "bio", "--model", "hf:base", "--model", "mix:m@7", "--limit", "2")
    assert r.returncode == 2 and "experts 0 to 1" in r.stderr
