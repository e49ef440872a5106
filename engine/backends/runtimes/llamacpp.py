"""The llama.cpp runtime (GGUF files): the one place a `llama_cpp.Llama` is built.

Generation resets the KV cache per prompt so a completion does not depend on what ran before it;
scoring reuses the prompt's KV cache for each label and reads one logits row at a time (no
vocabulary-by-context matrix); chat streams replies in either prompt style.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling
from engine.errors import UserError
from engine.spec.kinds import FinishReason
from engine.spec.prompts import ALPACA_STOP, alpaca_conversation, chat_messages, cut_at_stop


@contextmanager
def c_stderr_to_log() -> Iterator[None]:
    """llama.cpp's C code prints per-tensor lines on fd 2; they go to logs/llama.log instead."""
    from engine import paths

    try:
        log = (paths.home() / "logs" / "llama.log").open("ab")
    except OSError:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        log.close()


def load_llama(
    path: Path,
    threads: int,
    n_ctx: int = 4096,
    lora: Path | None = None,
    logits_all: bool = False,
    seed: int | None = None,
) -> Any:
    """llama.cpp on a GGUF file; a broken header or a file llama.cpp refuses is a UserError naming it."""
    import llama_cpp

    from engine.backends.gguf_meta import read_gguf_metadata

    read_gguf_metadata(path)  # raises UserError naming the file when the header is broken
    extra: dict[str, Any] = {} if seed is None else {"seed": seed}
    try:
        with c_stderr_to_log():
            return llama_cpp.Llama(
                str(path),
                lora_path=str(lora) if lora else None,
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                logits_all=logits_all,
                verbose=False,
                **extra,
            )
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: llama.cpp cannot load it: {exc}") from exc


def completion_args(sampling: Sampling, seed: int) -> dict[str, Any]:
    """create_completion arguments for plain temperature + top-p sampling (no top-k, min-p or penalty)."""
    return {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": 0 if sampling.temperature > 0 else 40,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "stop": list(sampling.stop) or None,
        "seed": seed,
    }


class LlamaCppGenerator:
    """One prompt at a time, the KV cache reset per prompt."""

    batch_size = 1

    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        if options.device == "cuda":
            raise UserError("GGUF models run on llama.cpp here (CPU); register the HF folder to use a GPU")
        self.name = model.name
        self.llm = load_llama(model.path, options.threads, options.context, model.lora, seed=0)
        self.context_length = min(options.context, int(self.llm.n_ctx()))

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int], cancel: Callable[[], bool]
    ) -> list[Completion]:
        from llama_cpp import StoppingCriteriaList

        stopper = StoppingCriteriaList([lambda _ids, _logits: cancel()])
        out = []
        for prompt, seed in zip(prompts, seeds):
            if cancel():
                break
            self.llm.reset()
            result: Any = self.llm.create_completion(
                prompt, **completion_args(sampling, seed), stopping_criteria=stopper
            )
            choice, usage = result["choices"][0], result["usage"]
            ended: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
            finish: FinishReason = "cancelled" if cancel() else ended
            out.append(Completion(choice["text"], finish, usage["prompt_tokens"], usage["completion_tokens"]))
        return out

    def close(self) -> None:
        self.llm.close()


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


class LlamaCppScorer:
    """Label log-likelihoods (prompt, then each label's tokens without BOS) and greedy answers."""

    def __init__(self, model: ModelFile, threads: int, n_ctx: int = 4096) -> None:
        self.name = model.name
        self.llm = load_llama(model.path, threads, n_ctx, model.lora)
        self.n_ctx = n_ctx

    def _last_row(self) -> np.ndarray:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()

    def _prompt_ids(self, prompt: str, room: int) -> list[int]:
        ids = list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
        limit = self.n_ctx - room
        if len(ids) > limit:  # keep the end (the question and "### Response:"), and the BOS if any
            head = ids[:1] if ids and ids[0] == self.llm.token_bos() else []
            ids = head + ids[len(ids) - (limit - len(head)) :]
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        encoded = [list(self.llm.tokenize(label.encode("utf-8"), add_bos=False, special=False)) for label in labels]
        ids = self._prompt_ids(prompt, max(len(e) for e in encoded) + 1)
        self.llm.reset()
        self.llm.eval(ids)
        first = _log_softmax(self._last_row())
        out = []
        for toks in encoded:
            total = float(first[toks[0]])
            self.llm.n_tokens = len(ids)  # back to the end of the prompt; its KV cache is reused
            for i in range(1, len(toks)):
                self.llm.eval([toks[i - 1]])
                total += float(_log_softmax(self._last_row())[toks[i]])
            out.append(total)
        return out

    def generate(self, prompt: str, max_tokens: int) -> str:
        ids = self._prompt_ids(prompt, max_tokens + 1)
        self.llm.reset()
        result: Any = self.llm.create_completion(ids, max_tokens=max_tokens, temperature=0.0, stop=list(ALPACA_STOP))
        return cut_at_stop(str(result["choices"][0]["text"]), ALPACA_STOP)[0].strip()

    def close(self) -> None:
        self.llm.close()


def open_generator(model: ModelFile, options: GeneratorOptions) -> LlamaCppGenerator:
    return LlamaCppGenerator(model, options)


def open_scorer(model: ModelFile, threads: int) -> LlamaCppScorer:
    return LlamaCppScorer(model, threads)


# ---- chat ---------------------------------------------------------------------------------


def stream_reply(
    llm: Any,
    prompt_format: str,
    system: str,
    turns: Sequence[Mapping[str, str]],
    sampling: Mapping[str, Any],
    stop: list[str],
    should_stop: Callable[[], bool],
) -> Iterator[str]:
    """Text pieces of a chat reply as they are generated; ends early when should_stop() turns true."""
    common = {
        "temperature": float(sampling["temperature"]),
        "top_p": float(sampling["top_p"]),
        "max_tokens": int(sampling["max_tokens"]),
        "stream": True,
    }
    if prompt_format == "alpaca":
        prompt = alpaca_conversation(system, turns)
        pieces = llm.create_completion(prompt, stop=[*ALPACA_STOP, *stop], **common)
        read: Callable[[Any], Any] = lambda c: c["choices"][0].get("text")  # noqa: E731
    else:
        pieces = llm.create_chat_completion(chat_messages(system, turns), stop=stop or None, **common)
        read = lambda c: c["choices"][0].get("delta", {}).get("content")  # noqa: E731
    for chunk in pieces:
        if should_stop():
            return
        yield str(read(chunk) or "")


def count_tokens(llm: Any, text: str) -> int:
    return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0


def greedy_answer(
    path: Path, question: str, prompt_format: str, threads: int, max_tokens: int, lora: Path | None
) -> str:
    """One greedy answer from a GGUF model, in the prompt style it was tuned with."""
    llm = load_llama(path, threads, 1024, lora)
    try:
        if prompt_format == "alpaca":
            from engine.spec.prompts import alpaca_prompt

            out = llm(alpaca_prompt(question, ""), max_tokens=max_tokens, temperature=0.0, stop=["### "])
            return str(out["choices"][0]["text"]).strip()
        reply = llm.create_chat_completion(
            [{"role": "user", "content": question}], max_tokens=max_tokens, temperature=0.0
        )
        return str(reply["choices"][0]["message"]["content"] or "").strip()
    finally:
        llm.close()
