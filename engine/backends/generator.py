"""Text generation behind one interface: llama.cpp for GGUF files, transformers for HF folders.

Both honour temperature (0 = greedy), top-p, max tokens, stop strings, a per-prompt seed and a
cancel callback checked between tokens, and report prompt/completion token counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.errors import UserError


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    finish: str  # "stop", "length" or "cancelled"
    prompt_tokens: int
    tokens: int


class Generator(Protocol):
    name: str
    context_length: int
    batch_size: int

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int], cancel: Callable[[], bool]
    ) -> list[Completion]: ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def llama_sampling(sampling: Sampling, seed: int) -> dict[str, Any]:
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
    """One prompt at a time; the KV cache is reset per prompt so results do not depend on order."""

    batch_size = 1

    def __init__(self, name: str, path: Path, threads: int, context: int) -> None:
        from llama_cpp import Llama

        self.name = name
        try:
            self.llm = Llama(
                model_path=str(path),
                n_ctx=context,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"llama.cpp cannot load {path}: {exc}") from exc
        self.context_length = min(context, int(self.llm.n_ctx()))

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
                prompt, **llama_sampling(sampling, seed), stopping_criteria=stopper
            )
            choice, usage = result["choices"][0], result["usage"]
            finish = "cancelled" if cancel() else (choice.get("finish_reason") or "stop")
            out.append(Completion(choice["text"], finish, usage["prompt_tokens"], usage["completion_tokens"]))
        return out

    def close(self) -> None:
        self.llm.close()


class TransformersGenerator:
    """Batched generation with left padding; bf16 on a GPU, float32 on CPU."""

    def __init__(self, name: str, path: Path, device: str, batch_size: int, threads: int, context: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but torch sees no CUDA GPU (try --device cpu)")
        if device == "cpu":
            torch.set_num_threads(threads)
        self.name, self.device, self.batch_size = name, device, batch_size
        try:
            self.tok = AutoTokenizer.from_pretrained(str(path))
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            self.model = model.to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"transformers cannot load {path}: {exc}") from exc
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        limit = getattr(self.model.config, "max_position_embeddings", context) or context
        self.context_length = min(context, int(limit))

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text)["input_ids"])

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int], cancel: Callable[[], bool]
    ) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            if cancel():
                break
            out += self._batch(list(prompts[start : start + self.batch_size]), sampling, seeds[start], cancel)
        return out

    def _batch(self, prompts: list[str], sampling: Sampling, seed: int, cancel: Callable[[], bool]) -> list[Completion]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self.torch

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), bool(cancel()), dtype=torch.bool, device=input_ids.device)

        torch.manual_seed(seed)
        enc = self.tok(prompts, return_tensors="pt", padding=True).to(self.device)
        sample = sampling.temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": sampling.max_tokens}
        if sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tok)
        with torch.inference_mode():
            ids = self.model.generate(
                **enc,
                **kwargs,
                pad_token_id=self.tok.pad_token_id,
                stopping_criteria=StoppingCriteriaList([Cancel()]),
            )
        width = enc["input_ids"].shape[1]
        eos = {self.tok.eos_token_id, self.tok.pad_token_id} - {None}
        results = []
        for row, prompt_mask in zip(ids, enc["attention_mask"]):
            new = row[width:].tolist()
            n = next((i for i, t in enumerate(new) if t in eos), len(new))
            decoded = str(self.tok.decode(new[:n], skip_special_tokens=True))
            text, stopped = cut_at_stop(decoded, sampling.stop)
            hit_eos = n < len(new)
            finish = "stop" if stopped or hit_eos else ("length" if n >= sampling.max_tokens else "stop")
            if cancel():
                finish = "cancelled"
            results.append(Completion(text, finish, int(prompt_mask.sum()), n + (1 if hit_eos else 0)))
        return results

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


def load_generator(
    name: str, kind: str, path: Path, threads: int, context: int, device: str = "auto", batch_size: int = 8
) -> Generator:
    if kind == "fake":
        if os.environ.get("SELFSPEC_TEST_FAKES") != "1":
            raise UserError("the fake generator is for tests only")
        from engine.backends.fakes import FakeGenerator

        return FakeGenerator()
    if kind == "gguf":
        if device == "cuda":
            raise UserError("GGUF models run on llama.cpp here (CPU); register the HF folder to use a GPU")
        return LlamaCppGenerator(name, path, threads, context)
    if kind == "hf":
        return TransformersGenerator(name, path, device, batch_size, threads, context)
    raise UserError(f"no generation backend for a {kind!r} model")
