"""A stop (SIGTERM, Ctrl-C) ends any command within seconds, even one that never checks for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

CHILD = """
import json, os, sys, time
from engine import runner
from engine.events import json_sink

def busy_python(ctx):          # a Python loop that never looks at the stop flag
    while True:
        sum(range(10000))

def blocked_in_c(ctx):         # a C call that never returns (like a stuck native library)
    r, w = os.pipe()
    os.read(r, 1)

def cooperative(ctx):
    while not ctx.should_stop():
        time.sleep(0.01)
    return {"stopped": True}

body = {"python": busy_python, "c": blocked_in_c, "coop": cooperative}[sys.argv[1]]
print(json.dumps({"event": "ready"}), flush=True)
sys.exit(runner.execute(json_sink(), "probe", body, record=False))
"""


def _run(kind: str, sig: int, grace: str = "1") -> tuple[int, float, list[dict]]:
    env = {**os.environ, "SELFSPEC_STOP_GRACE_S": grace}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        if json.loads(line).get("event") == "started":
            break
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - start
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert "Traceback" not in err, err
    return proc.returncode, took, events


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cooperative_stage_stops_at_once(sig: int) -> None:
    code, took, events = _run("coop", sig)
    assert code == 0 and took < 5 and events[-1]["event"] == "finished"  # 0, not 130: no escalation needed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stage_that_ignores_the_flag_is_interrupted_after_the_grace(sig: int) -> None:
    code, took, events = _run("python", sig)
    assert code == 130 and 0.8 < took < 5, took
    assert events[-1]["event"] == "interrupted"


def test_a_stage_stuck_in_c_code_still_exits_within_seconds() -> None:
    code, took, _ = _run("c", signal.SIGTERM)
    assert code == 130 and took < 10, took


def test_default_grace_is_a_few_seconds() -> None:
    code, took, _ = _run("python", signal.SIGTERM, grace="4")
    assert code == 130 and 3.5 < took < 8, took


@pytest.mark.slow
def test_sigterm_while_loading_the_model_for_training_stops_fast_and_resumes(home: Path, tmp_path: Path) -> None:
    """The embedded default's load (GGUF dequantize in transformers) used to ignore a stop."""
    from tests.helpers import run_engine

    assert run_engine("project", "create", "ld", "--domain", "medicine").returncode == 0
    data = tmp_path / "d.jsonl"
    rows = [{"instruction": f"Explain drug {i} in one line", "output": f"Drug {i} lowers pressure."} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_engine("dataset", "import", str(data), "--project", "ld", "--as", "accepted").returncode == 0
    args = [sys.executable, "-m", "engine", "--format", "text", "train", "--project", "ld", "--epochs", "1"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # inside imports / the model load
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - start < 10
    assert proc.returncode == 130 and "Traceback" not in err, err
    r = run_engine("train", "--project", "ld", timeout=900)
    assert r.returncode == 0, r.stderr
    import sqlite3

    con = sqlite3.connect(home / "selfspec.db")
    assert con.execute("SELECT status FROM adapters").fetchall() == [("done",)]  # resumed, not a second one
    assert con.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
