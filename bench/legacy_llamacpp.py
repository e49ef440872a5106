"""The generation path before batching, kept as the benchmark's baseline: a plugin runtime
("llama.cpp-serial") that answers one prompt at a time through llama-cpp-python's high-level
create_completion, resetting the KV cache per prompt, as the product did up to issue 14.

Load it with SELFSPEC_PLUGINS=bench.legacy_llamacpp (bench/generation.py and bench/evaluation.py do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.backends import registry
from engine.backends.runtimes.llamacpp import completion_args, load_llama
from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling, watched
from engine.spec.prompts import ALPACA_STOP, cut_at_stop

NAME = "llama.cpp-serial"


class SerialGenerator:
    batch_size = 1

    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        self.name = model.name
        self.llm = load_llama(model.path, options.threads, options.context, model.lora, seed=0)
        self.context_length = min(options.context, int(self.llm.n_ctx()))

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Any = None,
    ) -> list[Completion]:
        out = []
        for prompt, seed in zip(prompts, seeds):
            if cancel():
                break
            self.llm.reset()
            result: Any = self.llm.create_completion(prompt, **completion_args(sampling, seed))
            choice, usage = result["choices"][0], result["usage"]
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            out.append(Completion(choice["text"], finish, usage["prompt_tokens"], usage["completion_tokens"]))
        return [watched(c, watch) for c in out]

    def close(self) -> None:
        self.llm.close()


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


class SerialScorer:
    """One item at a time: the prompt evaluated from scratch, each label's tokens after it."""

    def __init__(self, model: ModelFile, threads: int, n_ctx: int = 4096) -> None:
        self.name = model.name
        self.llm = load_llama(model.path, threads, n_ctx, model.lora)

    def _last_row(self) -> np.ndarray:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        encoded = [list(self.llm.tokenize(label.encode("utf-8"), add_bos=False, special=False)) for label in labels]
        ids = list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
        self.llm.reset()
        self.llm.eval(ids)
        first = _log_softmax(self._last_row())
        out = []
        for toks in encoded:
            total = float(first[toks[0]])
            self.llm.n_tokens = len(ids)
            for i in range(1, len(toks)):
                self.llm.eval([toks[i - 1]])
                total += float(_log_softmax(self._last_row())[toks[i]])
            out.append(total)
        return out

    def generate(self, prompt: str, max_tokens: int) -> str:
        self.llm.reset()
        result: Any = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=list(ALPACA_STOP))
        return cut_at_stop(str(result["choices"][0]["text"]), ALPACA_STOP)[0].strip()

    def close(self) -> None:
        self.llm.close()


def open_generator(model: ModelFile, options: GeneratorOptions) -> SerialGenerator:
    return SerialGenerator(model, options)


def open_scorer(model: ModelFile, threads: int) -> SerialScorer:
    return SerialScorer(model, threads)


registry.register_runtime(registry.Runtime(NAME, __name__, ("gguf",)))
