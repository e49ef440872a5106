"""Generation spread over a local Ray cluster (127.0.0.1, real Ray): the rows equal a one-process
run; progress names each worker's rate; a running cluster is joined by address. The fake runtime
(tests.fakes, through SELFSPEC_PLUGINS) runs on the workers here; the embedded default on
llama.cpp, with a worker killed mid-run, is checked in test_batched_real (it reuses that file's
one-process run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, dump, make_project, run_engine, wait_for_rows

pytest.importorskip("ray")

FAKE = ["--target", "12", "--seed", "5", "--no-retrieval", "--batch-size", "4"]


def _in_home(tmp_path: Path, monkeypatch, label: str, model: str = "fake-generator") -> Path:
    home = tmp_path / label
    home.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(home))
    make_project("r", model=model)
    return home


def _generate(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    r = run_engine("generate", "--project", "r", *args, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_ray_rows_equal_one_process_and_progress_names_workers(tmp_path, monkeypatch):
    _in_home(tmp_path, monkeypatch, "one")
    _generate(*FAKE)
    want = dump(tmp_path / "one" / "selfspec.db")
    home = _in_home(tmp_path, monkeypatch, "ray")
    cmd = [sys.executable, "-m", "engine", "--format", "json", "generate", "--project", "r", *FAKE, "--ray", "local:2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert dump(home / "selfspec.db") == want and want["examples"]
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    workers = [e["workers"] for e in events if e.get("event") == "progress" and e.get("workers")]
    assert workers and len(workers[-1]) == 2
    assert all(w["prompts"] > 0 for w in workers[-1])  # both took work
    assert any("2 Ray workers" in e.get("message", "") for e in events if e.get("event") == "log")


def test_round_two_answers_on_ray_workers_equal_one_process(tmp_path, monkeypatch, tiny_folder):
    """`--respond-with` (round 2) spreads its answers over the workers too: here the project's base,
    the tiny Llama on transformers (`hf:base`), answers a fake-generator generation's tasks again."""
    import sqlite3

    dumps = []
    for label, ray in (("one2", ""), ("ray2", "local:2")):
        home = _in_home(tmp_path, monkeypatch, label)
        _generate(*FAKE)
        assert run_engine("models", "add", str(tiny_folder), "--name", "tiny").returncode == 0
        con = sqlite3.connect(home / "selfspec.db")
        with con:  # the base changes after the first round, so hf:base is a real transformers model
            con.execute("UPDATE projects SET base_model = 'tiny' WHERE name = 'r'")
        con.close()
        args = ["--new", "--tasks-from", "1", "--respond-with", "hf:base", "--batch-size", "1", "--seed", "2"]
        r = _generate(*args, "--response-max-tokens", "6", "--grounded", "off", "--ray", ray)
        assert ("2 Ray workers" in r.stderr) == bool(ray), r.stderr[-2000:]
        assert "answering with the expert hf:base (hf on transformers)" in r.stderr
        dumps.append(dump(home / "selfspec.db"))
    assert dumps[0] == dumps[1]
    answered = [e for e in dumps[1]["examples"] if json.loads(e[6]).get("responded_by") == "hf:base"]
    assert answered and len(dumps[1]["examples"]) == 12 + len(answered)  # round 1's 12, and the answers kept


def test_bad_ray_target_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    home = _in_home(tmp_path, monkeypatch, "bad")
    for target, words in [("local:x", "local:N"), ("local:0", "local:N"), ("127.0.0.1:1", "cannot join")]:
        r = run_engine("generate", "--project", "r", *FAKE, "--ray", target, timeout=300)
        assert r.returncode == 2, r.stderr[-2000:]
        assert words in r.stderr and "Traceback" not in r.stderr
    assert dump(home / "selfspec.db")["examples"] == []


def test_ray_cancel_reaches_the_workers_and_a_rerun_resumes(tmp_path, monkeypatch):
    _in_home(tmp_path, monkeypatch, "one")
    _generate(*FAKE)
    want = dump(tmp_path / "one" / "selfspec.db")
    home = _in_home(tmp_path, monkeypatch, "cut")
    monkeypatch.setenv("SELFSPEC_FAKE_GEN_DELAY", "0.3")
    cmd = [sys.executable, "-m", "engine", "--format", "text", "generate", "--project", "r", *FAKE, "--ray", "local:2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_rows(home / "selfspec.db", "SELECT count(*) FROM gen_prompts", 2, proc, timeout=180)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - started < 15  # the workers took the stop
    monkeypatch.delenv("SELFSPEC_FAKE_GEN_DELAY")
    r = _generate("--ray", "")  # resumes in this process alone (the Ray setting is run control)
    assert "resuming generation 1" in r.stderr and "Ray workers" not in r.stderr
    assert dump(home / "selfspec.db") == want
    from engine.store import generation, open_store

    db = open_store()
    assert generation.get(db, 1).config["generate"]["ray"] == ""  # the change was kept
    db.close()


def _worker_pids(stdout_lines: list[str]) -> list[int]:
    for line in reversed(stdout_lines):
        if '"workers"' in line:
            return [int(w["worker"].rsplit(":", 1)[1]) for w in json.loads(line)["workers"] if not w.get("lost")]
    return []


def ray_run_losing_a_worker(home: Path, args: list[str]) -> dict[str, list[tuple]]:
    """Generate on `--ray local:2` in the project "r" of SELFSPEC_HOME=home, kill -9 one worker once
    both have finished a chunk; the run must still succeed. Returns the store's rows."""
    cmd = [sys.executable, "-m", "engine", "--format", "json", "generate", "--project", "r", *args, "--ray", "local:2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    killed = None
    deadline = time.monotonic() + 900
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        pids = _worker_pids(lines)
        if killed is None and len(pids) == 2 and '"prompts": 0' not in line:
            killed = pids[-1]
            os.kill(killed, signal.SIGKILL)
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err[-3000:]
    assert killed is not None, "the run ended before a worker could be killed"
    last = next(json.loads(x)["workers"] for x in reversed(lines) if '"workers"' in x)
    assert any(w.get("lost") for w in last)  # the lost worker is shown as lost, a replacement took over
    return dump(home / "selfspec.db")


@pytest.mark.slow
def test_a_running_cluster_by_address(tmp_path, monkeypatch):
    """`ray start --head` on this machine, then `--ray auto` (the cluster `ray start` left here; Ray
    turns a 127.0.0.1 address into the machine's own): the same rows as one process."""
    import socket

    _in_home(tmp_path, monkeypatch, "one")
    _generate(*FAKE)
    want = dump(tmp_path / "one" / "selfspec.db")
    home = _in_home(tmp_path, monkeypatch, "cluster")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).parent / "ray")
    start = [ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--node-ip-address=127.0.0.1"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    r = subprocess.run(start, capture_output=True, text=True, timeout=180, env=os.environ)
    assert r.returncode == 0, r.stderr[-2000:]
    try:
        r = _generate(*FAKE, "--ray", "auto", "--ray-workers", "2")
        assert "generating on 2 Ray workers (auto)" in r.stderr
        assert dump(home / "selfspec.db") == want
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
