"""An OpenAI-compatible completions endpoint (vllm serve, SGLang, llama-server, llama-cpp-python's
server, or a cluster of them behind a load balancer) as a generation runtime.

Raw prompts go to POST {url}/v1/completions, never through a chat wrapper, with the per-request
seed, temperature, top-p, token limit and stop strings; `batch_size` requests are in flight at once.
Connection errors, 429 and 5xx answers are retried with exponential backoff; any other refusal is a
clear error naming the server's message. Token counts for fitting prompts come from the project's
own base model (its tokenizer alone is loaded), so the server should serve that model.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling, Watch, watched
from engine.errors import UserError
from engine.spec.kinds import FinishReason

RETRIES = 6
BACKOFF_S = 0.5
BACKOFF_CAP_S = 8.0
TIMEOUT_S = 600.0


def completions_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/completions"):
        return base
    return base + ("/completions" if base.endswith("/v1") else "/v1/completions")


def _models_url(base: str) -> str:
    return completions_url(base).rsplit("/", 1)[0] + "/models"


class _Retry(Exception):
    """A failure worth another try (connection refused or reset, 429, 5xx)."""


class LocalTokenizer:
    """The base model's tokenizer without its weights: a vocab-only GGUF load, or an HF tokenizer."""

    def __init__(self, model: ModelFile) -> None:
        self._count: Callable[[str], int]
        if model.format == "gguf":
            import llama_cpp
            from llama_cpp import _internals as internals

            from engine.backends.runtimes.llamacpp import c_stderr_to_log

            params = llama_cpp.llama_model_default_params()
            params.vocab_only = True
            with c_stderr_to_log():
                self._model = internals.LlamaModel(path_model=str(model.path), params=params, verbose=False)
            self._count = lambda text: len(self._model.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(model.path))
            self._count = lambda text: len(tok(text)["input_ids"])

    def count(self, text: str) -> int:
        return self._count(text)


class EndpointGenerator:
    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        if not options.endpoint:
            raise UserError("--backend endpoint needs --endpoint URL (an OpenAI-compatible server)")
        self.name = model.name
        self.url = completions_url(options.endpoint)
        self.served = options.served_model or model.name
        self.batch_size = options.batch_size
        self.context_length = options.context
        self.retries = 0
        self._check()
        self.tokenizer = LocalTokenizer(model)
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix="endpoint")
        self._stopped = threading.Event()

    def _check(self) -> None:
        """The server answers; when it lists its models, ours is among them."""
        try:
            with urllib.request.urlopen(_models_url(self.url), timeout=10) as r:
                listed = [m.get("id") for m in json.loads(r.read()).get("data", [])]
        except urllib.error.HTTPError:
            return  # some servers do not list models; the first completion will tell
        except (OSError, ValueError) as exc:
            raise UserError(f"--endpoint {self.url}: cannot reach the server: {exc}") from exc
        if listed and self.served not in listed:
            raise UserError(
                f"--endpoint {self.url} serves {', '.join(map(str, listed))}, not {self.served!r} "
                "(pass --served-model NAME)"
            )

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")[:300]
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code}: {text}") from exc
            raise UserError(f"--endpoint {self.url} refused the request (HTTP {exc.code}): {text}") from exc
        except (OSError, ValueError) as exc:  # refused, reset, timed out, or a garbled body
            raise _Retry(str(exc)) from exc

    def _one(self, prompt: str, sampling: Sampling, seed: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.served,
            "prompt": prompt,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": seed,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        for attempt in range(RETRIES + 1):
            if self._stopped.is_set():
                return Completion("", "cancelled", 0, 0)
            try:
                reply = self._post(body)
                choice = reply["choices"][0]
                usage = reply.get("usage") or {}
                finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
                text = str(choice.get("text") or "")
                tokens = int(usage.get("completion_tokens") or 0)
                return Completion(text, finish, int(usage.get("prompt_tokens") or 0), tokens)
            except _Retry as exc:
                if attempt == RETRIES:
                    raise UserError(f"--endpoint {self.url}: gave up after {RETRIES + 1} tries: {exc}") from exc
                self.retries += 1
                delay = min(BACKOFF_CAP_S, BACKOFF_S * 2**attempt) * (0.5 + random.random() / 2)
                self._stopped.wait(delay)
            except (KeyError, IndexError, TypeError) as exc:
                raise UserError(f"--endpoint {self.url}: not an OpenAI completions answer: {exc!r}") from exc
        raise AssertionError("unreachable")

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]:
        self._stopped.clear()
        futures: list[Future[Completion]] = [
            self._pool.submit(self._one, p, sampling, s) for p, s in zip(prompts, seeds)
        ]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if cancel():
                self._stopped.set()
                for f in pending:
                    f.cancel()
                break
        out: list[Completion] = []
        for f in futures:
            if not f.done() or f.cancelled():
                break
            out.append(watched(f.result(), watch))  # a UserError from a request surfaces here
        return out

    def close(self) -> None:
        self._stopped.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def open_generator(model: ModelFile, options: GeneratorOptions) -> EndpointGenerator:
    return EndpointGenerator(model, options)
