"""The llama.cpp runtime (GGUF files): the one place a `llama_cpp.Llama` is built (chat, export).

Generation and scoring run many sequences in one context (llama_batch.BatchContext): a batch's
shared prompt prefix is evaluated once, the cache is cleared after every batch so a completion
depends only on its prompt, its seed and the batch layout; chat streams replies in either style.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling
from engine.errors import UserError
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
    """Prompts decoded together in one multi-sequence context, batch_size at a time (see llama_batch)."""

    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        from engine.backends.runtimes.llama_batch import BatchContext

        if options.device == "cuda":
            raise UserError("GGUF models run on llama.cpp here (CPU); register the HF folder to use a GPU")
        self.name = model.name
        self.batch_size = options.batch_size
        # batch_size slots plus one sequence that holds the prompts' shared prefix
        self.engine = BatchContext(model.path, options.threads, options.context, options.batch_size + 1, model.lora)
        self.context_length = self.engine.cells
        self.special = options.chat  # chat-template prompts: their markers are special tokens

    @property
    def prefix_tokens_saved(self) -> int:
        return self.engine.prefix_tokens_saved

    def count_tokens(self, text: str) -> int:
        return len(self.engine.tokenize(text, special=self.special))

    def label_logprobs_many(self, prompts: Sequence[str], labels: Sequence[Sequence[str]]) -> list[list[float]]:
        """Label log-likelihoods with the generation's own model (self-judging): no second copy."""
        ids = [self.engine.tokenize(p, special=self.special) for p in prompts]
        return _label_passes(self.engine, ids, labels)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Callable[[str, int], int | None] | None = None,
    ) -> list[Completion]:
        ids = [self.engine.tokenize(p, special=self.special) for p in prompts]
        return self.engine.generate(ids, sampling, seeds, cancel, watch)

    def close(self) -> None:
        self.engine.close()


class LlamaCppScorer:
    """Label log-likelihoods (prompt, then each label's tokens without BOS), many prompts per pass,
    and greedy answers."""

    SEQUENCES = 13
    """sequences of the context (each its own cache stream of n_ctx cells): the few-shot prefix kept
    between passes, and 12 label sequences per pass (4 yes/no/maybe items)"""

    def __init__(self, model: ModelFile, threads: int, n_ctx: int = 4096) -> None:
        from engine.backends.runtimes.llama_batch import BatchContext

        self.name = model.name
        self.n_ctx = n_ctx
        self.engine = BatchContext(model.path, threads, n_ctx, self.SEQUENCES, model.lora)

    def _prompt_ids(self, prompt: str, room: int) -> list[int]:
        ids = self.engine.tokenize(prompt)
        limit = self.n_ctx - room
        if len(ids) > limit:  # keep the end (the question and "### Response:"), and the BOS if any
            bos = int(self.engine.model.token_bos())
            head = ids[:1] if ids and ids[0] == bos else []
            ids = head + ids[len(ids) - (limit - len(head)) :]
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        return self.label_logprobs_many([prompt], [labels])[0]

    def label_logprobs_many(self, prompts: Sequence[str], labels: Sequence[Sequence[str]]) -> list[list[float]]:
        """One pass for as many prompts as the context holds: their shared prefix is evaluated once."""
        room = [max(len(self.engine.tokenize(label, bos=False)) for label in options) + 1 for options in labels]
        return _label_passes(self.engine, [self._prompt_ids(p, r) for p, r in zip(prompts, room)], labels)

    def generate(self, prompt: str, max_tokens: int) -> str:
        ids = self._prompt_ids(prompt, max_tokens + 1)
        greedy = Sampling(0.0, 1.0, max_tokens, ALPACA_STOP)
        done = self.engine.generate([ids], greedy, [0], lambda: False)[0]
        return cut_at_stop(done.text, ALPACA_STOP)[0].strip()

    @property
    def prefix_tokens_saved(self) -> int:
        return self.engine.prefix_tokens_saved

    def close(self) -> None:
        self.engine.close()


def _label_passes(engine: Any, ids: list[list[int]], labels: Sequence[Sequence[str]]) -> list[list[float]]:
    """As many prompts per pass as the context has sequences for their labels."""
    encoded = [[engine.tokenize(label, bos=False) for label in options] for options in labels]
    out: list[list[float]] = []
    for part in _by_sequences(list(range(len(ids))), [len(e) for e in encoded], engine.keeper):
        out.extend(engine.label_logprobs([ids[i] for i in part], [encoded[i] for i in part]))
    return out


def _by_sequences(items: list[int], sizes: list[int], limit: int) -> list[list[int]]:
    """Consecutive groups of items whose sequence counts fit the context's limit."""
    groups: list[list[int]] = [[]]
    used = 0
    for item, size in zip(items, sizes):
        if groups[-1] and used + size > limit:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += size
    return groups


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


class SwitchingLlama:
    """One GGUF base loaded once, several LoRA GGUF adapters loaded beside it; `use(i)` puts adapter i
    (alone, at scale 1) on the context and drops the cached prompt, so the next answer is that expert's
    without reloading the base (a mixture's per-prompt routing)."""

    def __init__(self, base: Path, loras: list[Path], threads: int, n_ctx: int = 2048) -> None:
        import llama_cpp

        self.llm = load_llama(base, threads, n_ctx)
        self.adapters: list[Any] = []
        for path in loras:
            with c_stderr_to_log():
                adapter = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode("utf-8"))
            if adapter is None:
                self.close()
                raise UserError(f"{path}: llama.cpp cannot load this LoRA adapter (another base model?)")
            self.adapters.append(adapter)
        self.current: int | None = None

    def use(self, index: int | None) -> None:
        """Adapter `index` alone on the context (None: the bare base)."""
        import ctypes

        import llama_cpp

        if index == self.current:
            return
        if index is None:
            code = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            chosen = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.adapters[index])
            scales = (ctypes.c_float * 1)(1.0)
            code = llama_cpp.llama_set_adapters_lora(self.llm.ctx, chosen, 1, scales)
        if code:
            raise UserError(f"llama.cpp refused to switch to adapter {index} (code {code})")
        self.llm.reset()  # the cached prompt was computed with the other adapter
        self.current = index

    def answer(self, question: str, prompt_format: str, max_tokens: int) -> str:
        from engine.spec.prompts import ALPACA_STOP, alpaca_prompt

        if prompt_format == "alpaca":
            out = self.llm(alpaca_prompt(question, ""), max_tokens=max_tokens, temperature=0.0, stop=list(ALPACA_STOP))
            return str(out["choices"][0]["text"]).strip()
        reply = self.llm.create_chat_completion(
            [{"role": "user", "content": question}], max_tokens=max_tokens, temperature=0.0
        )
        return str(reply["choices"][0]["message"]["content"] or "").strip()

    def close(self) -> None:
        import llama_cpp

        if getattr(self, "llm", None) is not None:
            llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        for adapter in self.adapters:
            llama_cpp.llama_adapter_lora_free(adapter)
        self.adapters = []
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None
