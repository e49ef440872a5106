"""Scoring models for evaluation: label log-likelihoods and greedy answers, on llama.cpp or transformers.

Both backends score the same way: the prompt (with BOS where the model wants one), then each
label's tokens (no BOS), summing the log-probability of every label token. llama.cpp reuses the
prompt's KV cache for each label (rolling back to the prompt's end) and reads one logits row at
a time, so no vocabulary-by-context score matrix is ever allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.errors import UserError

ALPACA_STOP = ["### Instruction", "### Input", "\n### "]


class Scorer(Protocol):
    name: str

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]: ...

    def generate(self, prompt: str, max_tokens: int) -> str: ...

    def close(self) -> None: ...


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def cut_at_stop(text: str) -> str:
    cut = min((i for i in (text.find(s) for s in ALPACA_STOP) if i >= 0), default=len(text))
    return text[:cut].strip()


class GGUFScorer:
    def __init__(self, name: str, path: Path, lora: Path | None, threads: int, n_ctx: int = 4096) -> None:
        from engine.backends import chat_llm

        self.name = name
        self.llm = chat_llm.load(path, lora, threads, n_ctx)  # checks the file; UserError if llama.cpp refuses it
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
        result: Any = self.llm.create_completion(ids, max_tokens=max_tokens, temperature=0.0, stop=ALPACA_STOP)
        return cut_at_stop(str(result["choices"][0]["text"]))

    def close(self) -> None:
        self.llm.close()


class HFScorer:
    def __init__(self, name: str, kind: str, path: Path, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        torch.set_num_threads(max(1, threads))
        folder, extra = (path.parent, {"gguf_file": path.name}) if kind == "gguf" else (path, {})
        try:
            self.tok = AutoTokenizer.from_pretrained(folder, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: transformers cannot load it: {exc}") from exc
        self.limit = int(getattr(self.model.config, "max_position_embeddings", 4096) or 4096)

    def _prompt_ids(self, prompt: str, room: int) -> list[int]:
        ids = list(self.tok(prompt)["input_ids"])
        limit = min(self.limit, 4096) - room
        if len(ids) > limit:
            bos = self.tok.bos_token_id
            head = ids[:1] if ids and bos is not None and ids[0] == bos else []
            ids = head + ids[len(ids) - (limit - len(head)) :]
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        import torch

        encoded = [list(self.tok(label, add_special_tokens=False)["input_ids"]) for label in labels]
        ids = self._prompt_ids(prompt, max(len(e) for e in encoded) + 1)
        out = []
        with torch.no_grad():
            for toks in encoded:
                seq = torch.tensor([ids + toks])
                logp = torch.log_softmax(self.model(seq).logits[0].double(), dim=-1)
                out.append(float(sum(logp[len(ids) - 1 + i, t] for i, t in enumerate(toks))))
        return out

    def generate(self, prompt: str, max_tokens: int) -> str:
        import torch

        ids = self._prompt_ids(prompt, max_tokens + 1)
        with torch.no_grad():
            gen = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id,
            )
        return cut_at_stop(str(self.tok.decode(gen[0][len(ids) :], skip_special_tokens=True)))

    def close(self) -> None:
        del self.model


def open_scorer(name: str, kind: str, path: Path, lora: Path | None, threads: int) -> Any:
    """kind: "gguf" (llama.cpp), "hf-gguf" (transformers on a GGUF, dequantized) or "hf" (a folder)."""
    if kind == "gguf":
        return GGUFScorer(name, path, lora, threads)
    return HFScorer(name, "gguf" if kind == "hf-gguf" else "hf", path, threads)
