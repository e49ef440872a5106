"""Resume stays exact on the real batched paths: kill -9 mid-run and rerun gives exactly the rows of
an uninterrupted run, on the embedded default through batched llama.cpp and through an OpenAI-
compatible endpoint (llama-cpp-python's own server, started here on 127.0.0.1). With `--weights
file`, the same rows come from two local Ray workers, one of them killed mid-run, as from one process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.stages.models import DEFAULT_MODEL, builtin_path
from tests.helpers import ROOT, dump, run_engine, wait_for_rows

pytestmark = pytest.mark.slow
SMALL = ["--target", "4", "--seed", "11", "--max-tokens", "160", "--response-max-tokens", "40", "--passages", "2"]
SMALL += ["--demos", "2", "--max-prompts", "16", "--batch-size", "4", "--demo-block", "2", "--calibration-seeds", "2"]
FILE = ["--weights", "file"]


def _project() -> None:
    steps = [
        ("project", "create", "r", "--domain", "biomedicine", "--base-model", DEFAULT_MODEL, "--embedder", "fake-hash"),
        ("seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", "r"),
        ("corpus", "import", str(ROOT / "seeds" / "corpus" / "biomedicine"), "--project", "r"),
    ]
    for step in steps:
        r = run_engine(*step)
        assert r.returncode == 0, r.stderr


_STRAIGHT: dict[tuple[str, ...], dict] = {}
"""the rows of an uninterrupted run, per extra arguments: computed once for the module's tests"""


def _straight_and_killed(tmp_path: Path, monkeypatch, extra: list[str], sql: str) -> dict[str, dict]:
    results = {}
    for label in ("straight", "killed"):
        if label == "straight" and tuple(extra) in _STRAIGHT:
            results[label] = _STRAIGHT[tuple(extra)]
            continue
        home = tmp_path / label
        home.mkdir()
        monkeypatch.setenv("SELFSPEC_HOME", str(home))
        _project()
        args = [sys.executable, "-m", "engine", "generate", "--project", "r", *SMALL, *extra]
        if label == "killed":
            proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_rows(home / "selfspec.db", sql, 1, proc, timeout=300)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            r = run_engine("generate", "--project", "r", timeout=900)  # resumes with the stored settings
            assert r.returncode == 0, r.stderr[-2000:]
            assert "resuming generation 1" in r.stderr
        else:
            r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stderr[-2000:]
        results[label] = dump(home / "selfspec.db")
        if label == "straight" and not extra:  # an endpoint's URL differs per server: not reused
            _STRAIGHT[tuple(extra)] = results[label]
    assert results["straight"]["examples"], "no example was made"
    return results


@pytest.mark.parametrize(
    "sql", ["SELECT count(*) FROM gen_prompts", "SELECT count(*) FROM examples"], ids=["brainstorm", "respond"]
)
def test_batched_llama_cpp_kill_9_resume_is_exact(tmp_path: Path, monkeypatch, sql: str) -> None:
    results = _straight_and_killed(tmp_path, monkeypatch, [], sql)
    assert results["straight"] == results["killed"]
    if sql.endswith("examples"):  # and on two Ray workers, one thread each, one of them killed mid-run
        pytest.importorskip("ray")
        from tests.engine.test_ray import ray_run_losing_a_worker

        # each worker decodes its own chunk of a call: rows equal one process's on the file's own
        # Q4_1 kernels, whose results do not depend on what shares a micro-batch (F16's do)
        rows = {}
        for label, args in (("one", ["generate", "--project", "r", *SMALL, *FILE]), ("ray", None)):
            home = tmp_path / label
            home.mkdir()
            monkeypatch.setenv("SELFSPEC_HOME", str(home))
            _project()
            if args is None:
                monkeypatch.setenv("SELFSPEC_THREADS", "2")
                rows[label] = ray_run_losing_a_worker(home, [*SMALL, *FILE])
            else:
                r = run_engine(*args, timeout=900)
                assert r.returncode == 0, r.stderr[-2000:]
                rows[label] = dump(home / "selfspec.db")
        assert rows["ray"] == rows["one"] and rows["one"]["examples"]
    blocks = {}
    import json

    for row in results["straight"]["examples"]:
        p = json.loads(row[6])
        blocks.setdefault(p["response_demo_block"], set()).add(tuple(p["response_demo_ids"]))
    assert all(len(ids) == 1 for ids in blocks.values())  # one demonstration set per block


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    port = _free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", DEFAULT_MODEL]
    args += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < end, "llama-cpp-python's server did not start"
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_endpoint_generation_on_a_real_server_resumes_after_kill_9(
    tmp_path: Path, monkeypatch, llama_server: str
) -> None:
    """llama-cpp-python's server reuses the previous request's KV prefix, so its text depends on the
    order requests arrive: byte-exactness is checked against a server that answers from (prompt,
    seed) alone (test_endpoint.py). Here: the real server generates, and a killed run resumes with
    every prompt index once and every kept task answered once."""
    results = _straight_and_killed(
        tmp_path, monkeypatch, ["--endpoint", llama_server], "SELECT count(*) FROM gen_prompts"
    )
    for rows in results.values():
        indices = [p[0] for p in rows["prompts"]]
        assert indices == list(range(len(indices)))
        kept = [(c[0], c[1]) for c in rows["candidates"] if c[5] == "kept"]
        assert sorted((e[0], e[1]) for e in rows["examples"]) == kept
        assert any(p[3].strip() for p in rows["prompts"])  # the server wrote the tasks


def test_endpoint_that_is_down_is_a_clear_error(home: Path) -> None:
    _project()
    r = run_engine("generate", "--project", "r", "--endpoint", f"http://127.0.0.1:{_free_port()}", "--target", "2")
    assert r.returncode == 2 and "cannot reach the server" in r.stderr and "Traceback" not in r.stderr
