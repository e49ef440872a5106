"""The transformers runtime: Hugging Face folders (and GGUF files, dequantized, for scoring).

Generation is batched with left padding (bf16 on a GPU, float32 on CPU); scoring sums each
label token's log-probability after the prompt, as the llama.cpp runtime does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.backends.types import Completion, GeneratorOptions, ModelFile, Sampling, Watch, watched
from engine.errors import UserError
from engine.spec.kinds import FinishReason
from engine.spec.prompts import ALPACA_STOP, cut_at_stop


class TransformersGenerator:
    def __init__(self, model: ModelFile, options: GeneratorOptions) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but torch sees no CUDA GPU (try --device cpu)")
        if device == "cpu":
            torch.set_num_threads(options.threads)
        self.name, self.device, self.batch_size = model.name, device, options.batch_size
        folder, extra = _where(model)
        try:
            self.tok = AutoTokenizer.from_pretrained(folder, **extra)
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            loaded: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra)
            self.model = loaded.to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"transformers cannot load {model.path}: {exc}") from exc
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        limit = getattr(self.model.config, "max_position_embeddings", options.context) or options.context
        self.context_length = min(options.context, int(limit))

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text)["input_ids"])

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            if cancel():
                break
            out += self._batch(list(prompts[start : start + self.batch_size]), sampling, seeds[start], cancel)
        return [watched(c, watch) for c in out]

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
            finish: FinishReason = "stop" if stopped or hit_eos else ("length" if n >= sampling.max_tokens else "stop")
            if cancel():
                finish = "cancelled"
            results.append(Completion(text, finish, int(prompt_mask.sum()), n + (1 if hit_eos else 0)))
        return results

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


def _where(model: ModelFile) -> tuple[Path, dict[str, Any]]:
    """The folder to load from, and the gguf_file argument when the model is a GGUF file."""
    if model.format == "gguf":
        return model.path.parent, {"gguf_file": model.path.name}
    return model.path, {}


class TransformersScorer:
    def __init__(self, model: ModelFile, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model.name
        torch.set_num_threads(max(1, threads))
        folder, extra = _where(model)
        try:
            self.tok = AutoTokenizer.from_pretrained(folder, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"{model.path}: transformers cannot load it: {exc}") from exc
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
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        with torch.no_grad():
            gen = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        text = str(self.tok.decode(gen[0][len(ids) :], skip_special_tokens=True))
        return cut_at_stop(text, ALPACA_STOP)[0].strip()

    def close(self) -> None:
        del self.model


def open_generator(model: ModelFile, options: GeneratorOptions) -> TransformersGenerator:
    return TransformersGenerator(model, options)


def open_scorer(model: ModelFile, threads: int) -> TransformersScorer:
    return TransformersScorer(model, threads)
