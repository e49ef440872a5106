"""Scoring with a mixture of experts in transformers (the runtime for model format "mixture").

The model file is the mixture's descriptor (mixture.json, written when its router is trained); the
model name's suffix picks the routing:
    mix:NAME          the learned router, per token (exact Self-MoE)
    mix:NAME@seq      per prompt: the expert the router prefers over the prompt's tokens, alone
    mix:NAME@random   a random expert per token (the paper's baseline)
    mix:NAME@K        expert K alone (0-based): equal to that expert merged into the base
Every scored prompt's routing (top-1 choices per expert over its tokens) is kept with the score.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.backends.runtimes.hf import TransformersScorer
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


class MixtureScorer(TransformersScorer):
    def __init__(self, model: ModelFile, threads: int) -> None:  # noqa: D107 (no super().__init__: built here)
        import torch

        from engine.backends import moe
        from engine.backends.base_load import load_base

        self.name = model.name
        torch.set_num_threads(max(1, threads))
        try:
            desc = json.loads(Path(model.path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{model.path}: cannot read the mixture's descriptor: {exc}") from exc
        self.mode, forced = routing_of(model.name)
        n = len(desc["experts"])
        if forced is not None and not 0 <= forced < n:
            raise UserError(f"{model.name}: the mixture has experts 0 to {n - 1}")
        base, self.tok, _ = load_base(
            desc["base_format"], Path(desc["base_path"]), "auto", desc.get("quantize", "auto")
        )
        experts = [moe.read_expert(e["name"], Path(e["path"])) for e in desc["experts"]]
        self.model = moe.build_mixture(base.eval(), experts, int(desc["top_k"])).eval()
        moe.load_router(self.model, Path(desc["router"]))
        self.model.route.mode = "router" if self.mode == "seq" else self.mode
        self.model.route.forced = forced
        self.model.route.generator = torch.Generator().manual_seed(0)
        self.limit = int(getattr(base.config, "max_position_embeddings", 4096) or 4096)
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


def open_scorer(model: ModelFile, threads: int) -> MixtureScorer:
    return MixtureScorer(model, threads)
