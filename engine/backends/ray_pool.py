"""Generation spread over a Ray cluster: a Generator whose prompts run on workers (`--ray`).

The stage that calls it does not change: it still builds the prompts, keeps the store, parses,
filters and commits whole calls in prompt order. This generator cuts each call into chunks of a
worker's batch and deals them to whichever worker is free; every worker holds its own instance of
an ordinary runtime (llama.cpp, transformers, vLLM, an endpoint) on its cores or GPU. A prompt's
completion depends only on the prompt, its seed and the runtime (a batched llama.cpp sequence
decodes the same whatever shares its batch), so the rows equal a one-machine run with the same
backend and --batch-size. A worker that dies costs only its chunk in flight: the chunk goes back
to the queue for another worker, and a replacement worker is started.

What crosses to the workers is our own data (prompts, seeds, sampling settings) in Ray's own
serialization between processes of one user's cluster; no file is ever unpickled.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling, Watch
from engine.errors import UserError

ENV_PASSED = ("SELFSPEC_PLUGINS", "SELFSPEC_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SELFSPEC_VLLM_PYTHON")
JOIN_TIMEOUT_S = 60.0
LOST_LIMIT = 3
"""replacement workers started per worker asked for, before the run gives up"""


def parse_target(text: str) -> tuple[str, int]:
    """`local:N` -> ("local", N); anything else is a cluster address -> (address, 0)."""
    text = text.strip()
    if text.startswith("local"):
        _, _, count = text.partition(":")
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise UserError(f"--ray {text}: write local:N with N workers from 1 to 256 (local:2)")
        return "local", int(count)
    if not text:
        raise UserError("--ray: give local:N or the address of a running Ray cluster")
    return text, 0


class _Worker:
    """One generator on one Ray worker process (an actor with two threads: generate and cancel)."""

    def __init__(self, model: dict[str, Any], options: dict[str, Any], backend: str, env: dict[str, str]) -> None:
        from pathlib import Path

        from engine.backends import registry
        from engine.cpu import free_cores

        os.environ.update(env)
        if not options["threads"]:
            options = {**options, "threads": free_cores()}
        file = ModelFile(model["name"], model["format"], Path(model["path"]), model["lora"] and Path(model["lora"]))
        self.gen = registry.open_generator(file, GeneratorOptions(**options), backend)
        self.stop = threading.Event()

    def info(self) -> dict[str, Any]:
        return {
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "pid": os.getpid(),
            "context_length": self.gen.context_length,
            "batch_size": self.gen.batch_size,
            "scores": hasattr(self.gen, "label_logprobs_many"),
            "name": getattr(self.gen, "name", ""),
        }

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [self.gen.count_tokens(t) for t in texts]

    def generate(
        self, prompts: list[str], sampling: Sampling, seeds: list[int], watch: Watch | None
    ) -> tuple[list[Completion], float]:
        self.stop.clear()
        started = time.monotonic()
        outs = self.gen.generate(prompts, sampling, seeds, self.stop.is_set, watch)
        return outs, time.monotonic() - started

    def label_logprobs_many(self, prompts: list[str], labels: list[list[str]]) -> list[list[float]]:
        return self.gen.label_logprobs_many(prompts, labels)  # type: ignore[attr-defined, no-any-return]

    def cancel(self) -> None:
        self.stop.set()

    def prefix_tokens_saved(self) -> int:
        return int(getattr(self.gen, "prefix_tokens_saved", 0) or 0)

    def close(self) -> None:
        self.gen.close()


class RayGenerator:
    """The Generator protocol over a pool of Ray workers (see the module's docstring)."""

    def __init__(
        self, model: ModelFile, options: GeneratorOptions, backend: str, target: str, workers: int = 0
    ) -> None:
        ray = _ray()
        self.ray = ray
        where, count = parse_target(target)
        self.local = where == "local"
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: never report usage
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.local:
                ray.init(
                    num_cpus=count,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    logging_level="ERROR",
                )
            else:
                _reachable(where)
                _within(JOIN_TIMEOUT_S, lambda: ray.init(address=where, log_to_driver=False, logging_level="ERROR"))
        except UserError as exc:
            raise UserError(f"--ray {target}: cannot join the Ray cluster: {exc}") from exc
        except Exception as exc:  # a wrong address, a cluster that is down
            raise UserError(f"--ray {target}: cannot join the Ray cluster: {_first_line(exc)}") from exc
        finally:
            _restore(handlers)  # Ray's own SIGTERM handler would end the driver without a clean stop
        gpus = int(ray.cluster_resources().get("GPU", 0))
        n = count or workers or gpus or len([x for x in ray.nodes() if x.get("Alive")]) or 1
        self.size = n
        threads = max(1, options.threads // n) if self.local else 0
        self._options = {**asdict(options), "threads": threads}
        self._model = {"name": model.name, "format": model.format, "path": str(model.path), "lora": model.lora}
        self._model["lora"] = str(model.lora) if model.lora else None
        self._backend = backend
        self._env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
        self._gpu_each = 1 if gpus >= n else 0  # a GPU per worker when there are enough (Ray sets each one's)
        self._cls = ray.remote(_Worker)
        self._spare = n * LOST_LIMIT
        self.workers: list[Any] = [self._start() for _ in range(n)]
        self.info: dict[Any, dict[str, Any]] = {}
        self.stats: dict[str, list[float]] = {}
        for w in list(self.workers):
            self._describe(w)
        first = next(iter(self.info.values()))
        self.name = f"ray[{first['name']}]x{n}"
        self.context_length = int(first["context_length"])
        self.batch_size = int(first["batch_size"])  # calls are laid out as on one machine
        self._tokens: dict[str, int] = {}
        if first["scores"]:
            self.label_logprobs_many = self._label_logprobs_many

    # ---- workers ------------------------------------------------------------------------------

    def _start(self) -> Any:
        place = {"num_gpus": self._gpu_each, "num_cpus": 0} if self._gpu_each else {"num_cpus": 1}
        worker = self._cls.options(max_concurrency=2, **place)  # two threads: generate, and cancel beside it
        return worker.remote(self._model, self._options, self._backend, self._env)

    def _describe(self, w: Any) -> None:
        try:
            self.info[w] = self.ray.get(w.info.remote())
        except Exception as exc:
            self.close()
            raise UserError(f"a Ray worker could not open the model: {_first_line(exc)}") from exc
        self.stats.setdefault(self.info[w]["worker"], [0.0, 0.0, 0.0, 0.0])

    def _replace(self, dead: Any) -> None:
        """Drop a lost worker and start another in its place (Ray places it where there is room)."""
        if dead in self.workers:
            self.workers.remove(dead)
            name = self.info.get(dead, {}).get("worker")
            if name in self.stats:
                self.stats[name][3] = 1.0  # lost
        if self._spare <= 0:
            if not self.workers:
                raise UserError("every Ray worker was lost (see the Ray logs on the nodes); rerunning resumes")
            return
        self._spare -= 1
        fresh = self._start()
        self.workers.append(fresh)
        self._describe(fresh)

    def worker_rates(self) -> list[dict[str, Any]]:
        """Per worker: tokens/s over its finished chunks, prompts done, and whether it was lost."""
        return [
            {
                "worker": name,
                "tokens_per_s": round(tok / sec, 1) if sec > 0 else None,
                "prompts": int(done),
                **({"lost": True} if lost else {}),
            }
            for name, (tok, sec, done, lost) in self.stats.items()
        ]

    # ---- the Generator protocol ---------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if text not in self._tokens:
            if len(self._tokens) > 4096:
                self._tokens.clear()
            self._tokens[text] = self._on_any(lambda w: w.count_tokens.remote([text]))[0]
        return self._tokens[text]

    def _on_any(self, call: Callable[[Any], Any]) -> Any:
        while True:
            w = self.workers[0] if self.workers else None
            if w is None:
                raise UserError("every Ray worker was lost; rerunning resumes")
            try:
                return self.ray.get(call(w))
            except self.ray.exceptions.RayActorError:
                self._replace(w)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]:
        todo = self._chunks(len(prompts))
        outs: list[Completion | None] = [None] * len(prompts)

        def submit(w: Any, idx: list[int]) -> Any:
            return w.generate.remote([prompts[i] for i in idx], sampling, [seeds[i] for i in idx], watch)

        def finished(w: Any, idx: list[int], result: tuple[list[Completion], float]) -> None:
            done, seconds = result
            for i, c in zip(idx, done):
                outs[i] = c
            s = self.stats[self.info[w]["worker"]]
            s[0] += sum(c.tokens for c in done)
            s[1] += seconds
            s[2] += len(done)

        self._deal(todo, submit, finished, cancel)
        return [c for c in outs if c is not None]  # after a cancel, short or ending "cancelled": the stage stops

    def _label_logprobs_many(self, prompts: Sequence[str], labels: Sequence[Sequence[str]]) -> list[list[float]]:
        todo = self._chunks(len(prompts))
        outs: list[list[float] | None] = [None] * len(prompts)

        def submit(w: Any, idx: list[int]) -> Any:
            return w.label_logprobs_many.remote([prompts[i] for i in idx], [list(labels[i]) for i in idx])

        def finished(_w: Any, idx: list[int], result: list[list[float]]) -> None:
            for i, lp in zip(idx, result):
                outs[i] = lp

        self._deal(todo, submit, finished, lambda: False)
        return [lp or [] for lp in outs]

    def _chunks(self, n: int) -> list[list[int]]:
        """A call's prompts cut into one contiguous chunk per worker (a stack: first chunk last)."""
        size = max(1, math.ceil(n / max(1, len(self.workers))))
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)][::-1]

    def _deal(
        self,
        todo: list[list[int]],
        submit: Callable[[Any, list[int]], Any],
        finished: Callable[[Any, list[int], Any], None],
        cancel: Callable[[], bool],
    ) -> None:
        """Hand chunks to free workers until all are done; a lost worker's chunk goes back on the
        queue. On a cancel the workers are told to stop and are waited for; chunks not started stay
        undone."""
        ray = self.ray
        pending: dict[Any, tuple[Any, list[int]]] = {}
        cancelled = False
        while todo or pending:
            busy = {w for w, _ in pending.values()}
            for w in [w for w in self.workers if w not in busy]:
                if not todo or cancelled:
                    break
                idx = todo.pop()
                pending[submit(w, idx)] = (w, idx)
            if not pending:
                if cancelled:
                    break
                raise UserError("every Ray worker was lost; rerunning resumes")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            if not cancelled and cancel():
                cancelled = True
                todo.clear()
                for w, _ in pending.values():
                    w.cancel.remote()
            for ref in ready:
                w, idx = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError:
                    if not cancelled:
                        todo.append(idx)  # another worker takes it
                    self._replace(w)
                    continue
                finished(w, idx, result)

    @property
    def prefix_tokens_saved(self) -> int:
        total = 0
        for w in self.workers:
            try:
                total += int(self.ray.get(w.prefix_tokens_saved.remote(), timeout=5))
            except Exception:  # a worker lost at the end: its figure is gone with it
                continue
        return total

    def close(self) -> None:
        ray = self.ray
        for w in self.workers:
            try:
                ray.kill(w)
            except Exception:  # already gone
                continue
        self.workers = []
        if ray.is_initialized():
            ray.shutdown()


def _restore(handlers: dict[Any, Any]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _reachable(address: str) -> None:
    """Fail in seconds, not minutes of retries, when nothing listens at a host:port address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"nothing answers at {hostport} ({exc.strerror or exc})") from exc


def _within(seconds: float, call: Callable[[], Any]) -> None:
    """Run `call` in a helper thread; a UserError if it has not returned in time."""
    box: dict[str, BaseException] = {}

    def body() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=body, daemon=True, name="ray-join")
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise UserError(f"no answer in {seconds:.0f} s")
    if "error" in box:
        raise box["error"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError("--ray needs Ray: pip install 'selfspec-tui[ray]'") from exc
    return ray


def _first_line(exc: BaseException) -> str:
    """The useful line of a (possibly remote) error: a UserError's message when one is inside."""
    text = str(exc)
    for line in text.splitlines():
        if "UserError" in line:
            return line.split("UserError:", 1)[-1].strip()[:400]
    return (text.strip().splitlines() or [type(exc).__name__])[-1][:400]


def open_ray_generator(model: ModelFile, options: GeneratorOptions, backend: str, target: str, workers: int) -> Any:
    return RayGenerator(model, options, backend, target, workers)
