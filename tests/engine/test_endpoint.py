"""The OpenAI-compatible endpoint runtime against a scripted HTTP server on 127.0.0.1 (fast), and
against llama-cpp-python's real server serving the embedded default (slow, in test_endpoint_real)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.backends.runtimes.endpoint import EndpointGenerator, completions_url
from engine.backends.types import GeneratorOptions, ModelFile, Sampling
from engine.errors import UserError
from engine.stages.models import DEFAULT_MODEL, builtin_path
from tests.helpers import ROOT, dump, make_project, run_engine, wait_for_rows


class Script:
    """What the scripted server does: fail the first `failures` completions with `status`, delay each;
    with `fake`, answer as the tests' FakeGenerator would (text from prompt and seed alone)."""

    def __init__(self) -> None:
        self.failures, self.status, self.delay, self.fake = 0, 503, 0.0, False
        self.bodies: list[dict[str, Any]] = []
        self.models = [DEFAULT_MODEL]
        self.lock = threading.Lock()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"data": [{"id": m} for m in script.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.bodies.append(body)
                fail = script.failures > 0
                script.failures -= 1
            if fail:
                self._send(script.status, {"error": {"message": "busy, try later"}})
                return
            time.sleep(script.delay)
            text, finish = f"answer for seed {body['seed']}\nTask 9\nmore", "stop"
            if script.fake:
                from engine.backends.types import Sampling
                from tests.fakes import FakeGenerator

                sampling = Sampling(body["temperature"], body["top_p"], body["max_tokens"], tuple(body.get("stop", ())))
                done = FakeGenerator().generate([body["prompt"]], sampling, [body["seed"]], lambda: False)[0]
                text, finish = done.text, done.finish
            self._send(
                200,
                {
                    "choices": [{"text": text, "finish_reason": finish}],
                    "usage": {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": 7},
                },
            )

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()


def _model() -> ModelFile:
    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    return ModelFile(DEFAULT_MODEL, "gguf", gguf)


def _open(url: str, batch: int = 4) -> EndpointGenerator:
    return EndpointGenerator(_model(), GeneratorOptions(1, 2048, batch_size=batch, endpoint=url))


def test_urls() -> None:
    assert completions_url("http://h:1") == "http://h:1/v1/completions"
    assert completions_url("http://h:1/v1/") == "http://h:1/v1/completions"
    assert completions_url("http://h:1/v1/completions") == "http://h:1/v1/completions"


def test_raw_prompts_seeds_stops_in_order_with_retries(server: tuple[str, Script], monkeypatch) -> None:
    import engine.backends.runtimes.endpoint as endpoint

    monkeypatch.setattr(endpoint, "BACKOFF_S", 0.01)
    url, script = server
    script.failures = 3  # three 503s: each retried after a backoff
    gen = _open(url)
    assert gen.count_tokens("The kidney filters blood") >= 4  # the base model's own tokenizer
    prompts = [f"### Instruction:\nQuestion {i}\n\n### Response:\n" for i in range(6)]
    watch = lambda text, tokens: text.find("Task 9") if "Task 9" in text else None  # noqa: E731
    out = gen.generate(prompts, Sampling(0.7, 0.9, 33, ("###",)), [10, 11, 12, 13, 14, 15], lambda: False, watch)
    assert [c.text for c in out] == [f"answer for seed {s}\n" for s in range(10, 16)]  # in order, watched
    assert gen.retries == 3
    done = [b for b in script.bodies][3:]
    assert sorted(b["prompt"] for b in done) == sorted(prompts)  # raw text, no chat wrapper
    assert all(b["max_tokens"] == 33 and b["stop"] == ["###"] and b["temperature"] == 0.7 for b in done)
    assert all(b["model"] == DEFAULT_MODEL for b in done)
    gen.close()


def test_refusals_are_clear(server: tuple[str, Script], monkeypatch) -> None:
    import engine.backends.runtimes.endpoint as endpoint

    monkeypatch.setattr(endpoint, "BACKOFF_S", 0.01)
    url, script = server
    script.failures, script.status = 1, 400
    gen = _open(url)
    with pytest.raises(UserError, match=r"refused the request \(HTTP 400\).*busy, try later"):
        gen.generate(["x"], Sampling(0.0, 1.0, 4), [1], lambda: False)
    script.failures, script.status = 100, 500
    with pytest.raises(UserError, match="gave up after 7 tries"):
        gen.generate(["x"], Sampling(0.0, 1.0, 4), [1], lambda: False)
    gen.close()
    script.models = ["other-model"]
    with pytest.raises(UserError, match="not 'smollm2-135m-instruct'.*--served-model"):
        _open(url)
    with pytest.raises(UserError, match="cannot reach the server"):
        _open("http://127.0.0.1:9")


def test_cancel_returns_what_finished(server: tuple[str, Script]) -> None:
    url, script = server
    script.delay = 0.5
    gen = _open(url, batch=2)
    start = time.monotonic()
    out = gen.generate(
        [f"p{i}" for i in range(8)], Sampling(0.0, 1.0, 4), list(range(8)), lambda: time.monotonic() - start > 0.7
    )
    assert len(out) < 8 and time.monotonic() - start < 3
    gen.close()


def test_kill_9_and_resume_through_an_endpoint_is_exact(server, tmp_path: Path, monkeypatch) -> None:
    """Our side of the endpoint is exact: the same requests in the same calls after a kill -9, so a
    server that answers from (prompt, seed) alone gives exactly the rows of an uninterrupted run."""
    url, script = server
    script.fake, script.delay = True, 0.02
    results = {}
    for label in ("straight", "killed"):
        h = tmp_path / label
        h.mkdir()
        monkeypatch.setenv("SELFSPEC_HOME", str(h))
        make_project(model=DEFAULT_MODEL)
        args = [sys.executable, "-m", "engine", "generate", "--project", "t", "--target", "12", "--seed", "5"]
        args += ["--endpoint", url, "--batch-size", "3", "--demo-block", "4"]
        if label == "killed":
            proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_rows(h / "selfspec.db", "SELECT count(*) FROM examples", 3, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            r = run_engine("generate", "--project", "t")
            assert r.returncode == 0 and "resuming generation 1" in r.stderr, r.stderr
        else:
            r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        results[label] = dump(h / "selfspec.db")
    assert results["straight"] == results["killed"]
    assert len(results["straight"]["examples"]) == 12
