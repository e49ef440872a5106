"""Scoring with a mixture of experts in transformers (the runtime for model format "mixture").

The model file is the mixture's descriptor (mixture.json, written when its router is trained); the
model name's suffix picks the routing:
    mix:NAME          the learned router, per token (exact Self-MoE)
    mix:NAME@seq      per prompt: the expert the router prefers over the prompt's tokens, alone
    mix:NAME@random   a random expert per token (the paper's baseline)
    mix:NAME@K        expert K alone (0-based): equal to that expert merged into the base
    mix:NAME@gguf     as @seq, answered on llama.cpp (format "mixture-gguf")
Every scored prompt's routing (top-1 choices per expert over its tokens) is kept with the score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.backends.runtimes.hf import TransformersScorer
from engine.backends.runtimes.llamacpp import LlamaCppScorer, _label_passes
from engine.backends.types import ModelFile
from engine.errors import UserError

SUFFIXES = ("seq", "random", "uniform")


def routing_of(spec: str) -> tuple[str, int | None]:
    """(mode, forced expert) from a mix: spec: ("router", None), ("seq", None), ("router", 1), ..."""
    _, _, suffix = spec.partition("@")
    if not suffix:
        return "router", None
    if suffix in SUFFIXES:
        return suffix, None
    if suffix.isdigit():
        return "router", int(suffix)
    raise UserError(f"{spec}: after @ comes seq, random, uniform or an expert's number")


def read_descriptor(path: Path) -> dict[str, Any]:
    try:
        desc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the mixture's descriptor: {exc}") from exc
    return desc


_LAST: dict[str, tuple[Any, Any, int]] = {}
"""the last mixture loaded in this process, by descriptor: an evaluation opens one scorer per
routing (expert alone, per token, per prompt) on the same mixture, and they share one load"""


def load_routed(desc: dict[str, Any]) -> tuple[Any, Any, int]:
    """The mixture in transformers (base, experts, trained router), its tokenizer and context limit."""
    from engine.backends import moe
    from engine.backends.base_load import load_base

    key = json.dumps(desc, sort_keys=True)
    if key in _LAST:
        mixture, tok, limit = _LAST[key]
        state = mixture.route
        state.mode, state.forced, state.gate, state.tally = "router", None, None, None
        return mixture, tok, limit
    _LAST.clear()
    base, tok, _ = load_base(desc["base_format"], Path(desc["base_path"]), "auto", desc.get("quantize", "auto"))
    experts = [moe.read_expert(e["name"], Path(e["path"])) for e in desc["experts"]]
    mixture = moe.build_mixture(base.eval(), experts, int(desc["top_k"])).eval()
    moe.load_router(mixture, Path(desc["router"]))
    _LAST[key] = (mixture, tok, int(getattr(base.config, "max_position_embeddings", 4096) or 4096))
    return _LAST[key]


class MixtureScorer(TransformersScorer):
    def __init__(self, model: ModelFile, threads: int) -> None:  # noqa: D107 (no super().__init__: built here)
        import torch

        self.name = model.name
        torch.set_num_threads(max(1, threads))
        desc = read_descriptor(model.path)
        self.mode, forced = routing_of(model.name)
        n = len(desc["experts"])
        if forced is not None and not 0 <= forced < n:
            raise UserError(f"{model.name}: the mixture has experts 0 to {n - 1}")
        self.model, self.tok, self.limit = load_routed(desc)
        self.model.route.mode = "router" if self.mode == "seq" else self.mode
        self.model.route.forced = forced
        self.model.route.generator = torch.Generator().manual_seed(0)
        self.last_routing: list[int] = []

    def _route_prompt(self, prompt: str) -> None:
        """Tally the prompt's routing; at seq, route the whole item to the preferred expert."""
        from engine.backends import moe

        state = self.model.route
        keep = state.forced
        if self.mode == "seq":
            state.forced = None
        self.last_routing = moe.tally_prompts(self.model, [self._prompt_ids(prompt, 1)])
        if self.mode == "seq":
            state.forced = max(range(len(self.last_routing)), key=lambda i: self.last_routing[i])
        else:
            state.forced = keep

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        self._route_prompt(prompt)
        return super().label_logprobs(prompt, labels)

    def generate(self, prompt: str, max_tokens: int) -> str:
        self._route_prompt(prompt)
        return super().generate(prompt, max_tokens)


class MixtureGgufScorer(LlamaCppScorer):
    """`mix:NAME@gguf`: per prompt, the expert the router prefers (a transformers forward over the
    prompt), then llama.cpp scores or answers with that expert's LoRA GGUF switched in on the one
    loaded base GGUF (`mixture export` writes the files)."""

    label_logprobs_many = None  # type: ignore[assignment]  # per item: each prompt has its own expert

    def __init__(self, model: ModelFile, threads: int) -> None:
        import torch

        desc = read_descriptor(model.path)
        gguf = desc.get("gguf")
        if not gguf:
            raise UserError(f"{model.name}: the mixture has no GGUF files: run `mixture export` first")
        torch.set_num_threads(max(1, threads))
        super().__init__(ModelFile(model.name, "gguf", Path(gguf["base"])), threads)
        self.engine.add_loras([Path(f) for f in gguf["experts"]])
        self.router, self.router_tok, limit = load_routed(desc)
        self.router_limit = min(limit, 4096)
        self.last_routing: list[int] = []

    def _route(self, prompt: str) -> None:
        from engine.backends import moe

        ids = list(self.router_tok(prompt)["input_ids"])[-self.router_limit :]
        self.last_routing = moe.tally_prompts(self.router, [ids])
        self.engine.use_lora(max(range(len(self.last_routing)), key=lambda i: self.last_routing[i]))

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        self._route(prompt)
        room = max(len(self.engine.tokenize(label, bos=False)) for label in labels) + 1
        return _label_passes(self.engine, [self._prompt_ids(prompt, room)], [labels])[0]

    def generate(self, prompt: str, max_tokens: int) -> str:
        self._route(prompt)
        return super().generate(prompt, max_tokens)


def open_scorer(model: ModelFile, threads: int) -> Any:
    if model.format == "mixture-gguf":
        return MixtureGgufScorer(model, threads)
    return MixtureScorer(model, threads)
