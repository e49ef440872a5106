"""Training spread over processes (torchrun, gloo on CPU) on the tiny Llama: the same global batch
and seed give the losses and the adapter of one process (DDP and FSDP); a stop or a killed rank
resumes, also on a different number of processes or strategy. Real torch.distributed, real processes."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import adapters
from tests.engine.test_train import losses
from tests.helpers import ROOT, run_engine

# 4 micro-batches of 1 per step: two each on two ranks; dropout on, so its masks must match too
ARGS = ["train", "--project", "tp", "--lr", "5e-3", "--batch-size", "4", "--micro-batch", "1", "--epochs", "3"]
ARGS += ["--checkpoint-every", "2", "--dropout", "0.1"]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def _close(a: list, b: list, tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and abs(x[1] - y[1]) <= tol * max(1.0, abs(x[1])) and (x[2] is None) == (y[2] is None)
        for x, y in zip(a, b)
    )


def _rank_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"engine.train_rank" in cmd and b"torch.distributed.run" not in cmd:
                pids.append(int(entry.name))
    return sorted(pids)


def _one_process_losses(db, project) -> list:
    """Train "one" straight on one process; its step losses are what every other layout must give."""
    assert run_engine(*ARGS, "--name", "one", timeout=600).returncode == 0
    return losses(db, adapters.by_name(db, project, "one").id)


def _started(home: Path, name: str, steps: int, *extra: str) -> subprocess.Popen:
    """A new adapter `name` training in the background, once it has recorded `steps` steps."""
    cmd = [sys.executable, "-m", "engine", "--format", "text", *ARGS, "--name", name, "--new", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_steps(home, name, steps, proc)
    return proc


def _wait_steps(home: Path, name: str, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    con = sqlite3.connect(home / "selfspec.db")
    deadline = time.monotonic() + timeout
    try:
        while True:
            row = con.execute(
                "SELECT count(*) FROM train_steps s JOIN adapters a ON a.id = s.adapter_id WHERE a.name = ?", (name,)
            ).fetchone()
            if row[0] >= n:
                return
            assert proc.poll() is None and time.monotonic() < deadline, "training ended before the test could act"
            time.sleep(0.05)
    finally:
        con.close()


@pytest.mark.slow
def test_sigterm_stops_every_rank_and_resumes_on_one_process(db, tiny_project, home):
    want = _one_process_losses(db, tiny_project)
    proc = _started(home, "cut", 3, "--processes", "2")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "checkpoint" in err
    time.sleep(0.5)
    assert _rank_pids() == []  # no rank outlives the command
    cut = adapters.by_name(db, tiny_project, "cut")
    assert cut.status == "interrupted" and 3 <= len(losses(db, cut.id)) < len(want)
    r = run_engine("train", "--project", "tp", timeout=600)  # one process now
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from checkpoint" in r.stderr
    assert _close(losses(db, cut.id), want)


@pytest.mark.slow
def test_kill_9_of_one_rank_then_rerun_resumes(db, tiny_project, home):
    want = _one_process_losses(db, tiny_project)
    proc = _started(home, "hit", 5, "--processes", "2")
    ranks = _rank_pids()
    assert len(ranks) == 2
    os.kill(ranks[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, err[-3000:]
    assert "rerunning `train` resumes" in err and "Traceback" not in err
    time.sleep(0.5)
    assert _rank_pids() == []
    hit = adapters.by_name(db, tiny_project, "hit")
    assert hit.status == "failed" and len(losses(db, hit.id)) < len(want)
    r = run_engine("train", "--project", "tp", "--processes", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from checkpoint" in r.stderr and "2 processes (ddp)" in r.stderr
    assert _close(losses(db, hit.id), want)
    one, hit = adapters.by_name(db, tiny_project, "one"), adapters.by_name(db, tiny_project, "hit")
    assert hit.status == "done" and hit.metrics["processes"] == 2 and hit.metrics["steps"] == 15
    wa, wb = _weights(Path(one.path)), _weights(Path(hit.path))
    assert wa.keys() == wb.keys() and len(wa) > 0
    assert all(float((wa[k] - wb[k]).abs().max()) < 1e-4 for k in wa)
    assert any(float(wa[k].abs().max()) > 0 for k in wa if "lora_B" in k)  # the adapter did train


def test_process_count_is_checked(db, tiny_project):
    r = run_engine(*ARGS, "--processes", "0")
    assert r.returncode == 2 and "--processes" in r.stderr
    assert adapters.list_for(db, tiny_project) == []  # refused before anything was written
    r = run_engine(*ARGS, "--processes", "2", "--device", "cuda")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_nccl_equal_one(db, tiny_project, home, strategy):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    base = ["--device", "cuda", "--quantize", "none"]
    assert run_engine(*ARGS, *base, "--name", "one", timeout=900).returncode == 0
    r = run_engine(*ARGS, *base, "--name", "two", "--new", "--processes", "2", "--strategy", strategy, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = adapters.by_name(db, tiny_project, "one"), adapters.by_name(db, tiny_project, "two")
    assert _close(losses(db, a.id), losses(db, b.id), tol=2e-2)  # bf16 autocast on GPU


@pytest.mark.slow
def test_fsdp_on_two_processes_equals_one_and_checkpoints_cross_over(db, tiny_project, home):
    """FSDP shards the base and the LoRA state over two ranks: the same losses and adapter as one
    process; a one-process checkpoint resumes on FSDP ranks (which gather and reshard it)."""
    want = _one_process_losses(db, tiny_project)
    a = adapters.by_name(db, tiny_project, "one")
    r = run_engine(*ARGS, "--name", "sharded", "--new", "--processes", "2", "--strategy", "fsdp", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(fsdp)" in r.stderr
    held = re.search(r"rank 0 holds ([\d,]+) of the model's ([\d,]+) parameters", r.stderr)
    assert held and int(held[1].replace(",", "")) < 0.6 * int(held[2].replace(",", ""))  # about half
    sharded = adapters.by_name(db, tiny_project, "sharded")
    assert _close(losses(db, sharded.id), want)
    wa, ws = _weights(Path(a.path)), _weights(Path(sharded.path))
    assert wa.keys() == ws.keys() and all(float((wa[k] - ws[k]).abs().max()) < 1e-4 for k in wa)
    proc = _started(home, "cross", 4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    r = run_engine("train", "--project", "tp", "--processes", "2", "--strategy", "fsdp", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from checkpoint" in r.stderr
    cross = adapters.by_name(db, tiny_project, "cross")
    assert _close(losses(db, cross.id), want)
    wc = _weights(Path(cross.path))
    assert all(float((wa[k] - wc[k]).abs().max()) < 1e-4 for k in wa)


@pytest.mark.gpu
def test_more_processes_than_gpus_is_refused(db, tiny_project):
    import torch

    n = torch.cuda.device_count()
    r = run_engine(*ARGS, "--processes", str(n + 1), "--device", "cuda")
    assert r.returncode == 2 and f"has {n} GPU" in r.stderr and "Traceback" not in r.stderr
    assert adapters.list_for(db, tiny_project) == []  # refused before anything was written
