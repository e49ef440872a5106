"""Self-MoE in transformers: several frozen LoRA experts on one frozen base, behind a learned router.

At every linear module an expert adapted, the output is
    h = W0 x + sum_i gate_i * s_i * B_i A_i x
where s_i is expert i's LoRA scale and gate = top-k(softmax(router(hidden))). The router is one
linear layer (hidden size -> experts) shared by every decoder layer; each decoder layer routes each
token from the hidden state entering that layer, and every adapted module in the layer uses that
gate. (The paper writes theta_r x with x the module's input; a module such as down_proj reads the
MLP's inner width, not the hidden size, so one shared router can only read the layer's input.)
The top-k gate values are softmax probabilities, not renormalized, so the router gets a gradient.

Experts are peft adapter folders (adapter_config.json + adapter_model.safetensors), read without
peft: only their A and B matrices and scale are needed. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.backends.trainer import StepLoop
from engine.errors import UserError

ROUTINGS = ("router", "random", "uniform")
LAYER_RE = re.compile(r"^(.*\.layers\.\d+)\.")
PEFT_PREFIX = "base_model.model."


@dataclass
class ExpertWeights:
    """One expert's LoRA pairs by module name (A: rank x in, B: out x rank) and its scale."""

    name: str
    pairs: dict[str, tuple[Any, Any]]
    scale: float


def read_expert(name: str, folder: Path) -> ExpertWeights:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_file, weights_file = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    for f in (config_file, weights_file):
        if not f.is_file():
            raise UserError(f"expert {name}: {f} is missing (train or re-train that adapter)")
    try:
        cfg = json.loads(config_file.read_text(encoding="utf-8"))
        rank, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"expert {name}: {config_file} has no readable r / lora_alpha ({exc})") from exc
    if cfg.get("use_dora"):
        raise UserError(f"expert {name}: DoRA adapters cannot be mixed (only plain LoRA)")
    scale = alpha / (math.sqrt(rank) if cfg.get("use_rslora") else rank)
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"expert {name}: cannot read {weights_file}: {exc}") from exc
    halves: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        for part in ("A", "B"):
            suffix = f".lora_{part}.weight"
            if key.endswith(suffix):
                module = key.removeprefix(PEFT_PREFIX).removesuffix(suffix)
                halves.setdefault(module, {})[part] = tensor.float()
    pairs = {m: (h["A"], h["B"]) for m, h in halves.items() if "A" in h and "B" in h}
    if not pairs or len(pairs) != len(halves):
        raise UserError(f"expert {name}: {weights_file} holds no complete LoRA A/B pairs")
    return ExpertWeights(name, pairs, scale)


@dataclass
class RouteState:
    """What the current forward pass routes with; shared by the hooks and the mixed modules."""

    mode: str = "router"
    gate: Any = None
    """[batch, tokens, experts] for the decoder layer running now"""
    generator: Any = None
    """the RNG of random routing (seeded, so an evaluation repeats)"""
    mask: Any = None
    """[batch, tokens] of real (unpadded) tokens, for the tallies"""
    tally: Any = None
    """top-1 choices per expert, summed over layers and real tokens, while set"""
    layers: int = 0
    forced: int | None = field(default=None)
    """route every token to this expert at gate 1 (a lone expert, or the sequence-level choice)"""


def mixed_linear(base: Any, pairs: list[tuple[Any, Any, float] | None], state: RouteState) -> Any:
    import torch

    class _Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.state = state
            self.experts = [i for i, p in enumerate(pairs) if p is not None]
            self.scales = [p[2] if p is not None else 0.0 for p in pairs]
            device = next(base.parameters()).device
            for i, p in enumerate(pairs):
                if p is not None:
                    self.register_buffer(f"a{i}", p[0].to(device), persistent=False)
                    self.register_buffer(f"b{i}", p[1].to(device), persistent=False)

        def forward(self, x: Any) -> Any:
            out = self.base(x)
            gate = self.state.gate
            if gate is None:
                return out
            xf = x.float()
            delta = None
            for i in self.experts:
                g = gate[..., i : i + 1]
                part = (xf @ getattr(self, f"a{i}").T) @ getattr(self, f"b{i}").T
                part = part * (g * self.scales[i])
                delta = part if delta is None else delta + part
            return out if delta is None else out + delta.to(out.dtype)

    return _Mixed()


def _gates(router: Any, hidden: Any, state: RouteState, top_k: int) -> Any:
    import torch

    n = router.out_features
    if state.forced is not None:
        gate = torch.zeros(*hidden.shape[:-1], n, device=hidden.device)
        gate[..., state.forced] = 1.0
        return gate
    if state.mode == "uniform":
        return torch.full((*hidden.shape[:-1], n), 1.0 / n, device=hidden.device)
    if state.mode == "random":
        pick = torch.randint(0, n, hidden.shape[:-1], generator=state.generator, device="cpu").to(hidden.device)
        return torch.nn.functional.one_hot(pick, n).float()
    probs = torch.softmax(router(hidden.float()), dim=-1)
    top = probs.topk(min(top_k, n), dim=-1)
    return torch.zeros_like(probs).scatter(-1, top.indices, top.values)


def build_mixture(model: Any, experts: list[ExpertWeights], top_k: int) -> Any:
    """`model` with every adapted module mixed and the router attached; only the router trains.

    Returns a torch module whose forward is the model's and whose `router` and `route` (RouteState)
    are the mixture's."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
    hidden = int(model.config.get_text_config().hidden_size)
    state = RouteState()
    names = sorted({m for e in experts for m in e.pairs})
    owned = dict(model.named_modules())
    layers: dict[str, Any] = {}
    for name in names:
        module = owned.get(name)
        if module is None or not hasattr(module, "in_features"):
            raise UserError(f"expert module {name!r} is not a linear module of this base model (other base?)")
        pairs: list[tuple[Any, Any, float] | None] = [
            (e.pairs[name][0], e.pairs[name][1], e.scale) if name in e.pairs else None for e in experts
        ]
        for e, pair in zip(experts, pairs, strict=True):
            if pair is not None and (pair[0].shape[1] != module.in_features or pair[1].shape[0] != module.out_features):
                raise UserError(f"expert {e.name}: {name} does not fit this base model's shapes (other base?)")
        parent_name, _, child = name.rpartition(".")
        setattr(owned[parent_name] if parent_name else model, child, mixed_linear(module, pairs, state))
        found = LAYER_RE.match(name + ".")
        if found is None:
            raise UserError(f"expert module {name!r} is outside the decoder layers; it cannot be routed")
        layers[found.group(1)] = owned[found.group(1)]
    device = next(model.parameters()).device

    class _Mixture(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.router = torch.nn.Linear(hidden, len(experts), bias=False, device=device)
            torch.nn.init.normal_(self.router.weight, std=0.02)
            self.route = state
            self.top_k = top_k
            self.config = model.config

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.model(*args, **kwargs)

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            return self.model.generate(*args, **kwargs)

    mixture = _Mixture()

    def before_layer(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        h = args[0] if args else kwargs["hidden_states"]
        gate = _gates(mixture.router, h, state, mixture.top_k)
        state.gate = gate
        if state.tally is not None:
            choice = gate.argmax(-1)
            real = state.mask if state.mask is not None and state.mask.shape == choice.shape else None
            for i in range(gate.shape[-1]):
                hit = choice == i
                state.tally[i] += int((hit & real.bool()).sum() if real is not None else hit.sum())

    for layer in layers.values():
        layer.register_forward_pre_hook(before_layer, with_kwargs=True)
    state.layers = len(layers)
    return mixture


def shares(tally: list[int]) -> list[float]:
    total = sum(tally)
    return [t / total if total else 0.0 for t in tally]


def route_counts(mixture: Any, ids: Any, mask: Any | None = None) -> list[int]:
    """Top-1 choices per expert over the tokens of `ids` (every layer counts once per token)."""
    import torch

    state: RouteState = mixture.route
    state.tally, state.mask = [0] * mixture.router.out_features, mask
    try:
        with torch.no_grad():
            mixture(input_ids=ids, attention_mask=mask)
        return list(state.tally)
    finally:
        state.tally, state.mask, state.gate = None, None, None


class RouterRun(StepLoop):
    """Trains only the router of a mixture, with the loop LoRA training uses."""

    WEIGHTS = "router.safetensors"
    NOTHING_TO_TRAIN = "the mixture has no router to train"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        cfg: Any,
        data: tuple[Any, Any],
        info: Any,
        threads: int,
        experts: list[ExpertWeights],
    ) -> None:
        self.experts = experts
        train, val = data
        super().__init__(model, tokenizer, cfg, train, val, info, threads)

    def wrap(self, model: Any) -> Any:
        model.config.use_cache = False
        if self.cfg.gradient_checkpointing == "on":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return build_mixture(model, self.experts, self.cfg.top_k)

    def save_weights(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({"router.weight": self.model.router.weight.detach().cpu().contiguous()}, str(folder / self.WEIGHTS))
        meta = {"experts": [e.name for e in self.experts], "top_k": self.cfg.top_k}
        (folder / "router.json").write_text(json.dumps(meta, indent=2))

    def load_weights(self, folder: Path) -> None:
        load_router(self.model, folder / self.WEIGHTS)


def load_router(mixture: Any, file: Path) -> None:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weight = load_file(str(file))["router.weight"]
    except (SafetensorError, OSError, KeyError) as exc:
        raise UserError(f"cannot read the router from {file}: {exc}") from exc
    if tuple(weight.shape) != tuple(mixture.router.weight.shape):
        raise UserError(f"{file}: router of shape {tuple(weight.shape)}, expected {tuple(mixture.router.weight.shape)}")
    with torch.no_grad():
        mixture.router.weight.copy_(weight.to(mixture.router.weight.device))


def tally_prompts(mixture: Any, prompts: list[list[int]]) -> list[int]:
    """Top-1 choices per expert summed over several prompts (token ids), one forward each."""
    import torch

    total = [0] * mixture.router.out_features
    device = mixture.router.weight.device
    mixture.eval()
    for ids in prompts:
        for i, c in enumerate(route_counts(mixture, torch.tensor([ids], device=device))):
            total[i] += c
    return total


def routed_answer(
    mixture: Any, tokenizer: Any, ids: list[int], max_tokens: int, routing: str, seed: int = 0
) -> tuple[str, list[int]]:
    """A greedy answer routed per token (`routing`: router, random or uniform), and the prompt's tally."""
    import torch

    if routing not in ROUTINGS:
        raise UserError(f"routing must be one of {', '.join(ROUTINGS)}, not {routing!r}")
    mixture.route.mode = routing
    mixture.route.generator = torch.Generator().manual_seed(seed)
    counts = tally_prompts(mixture, [ids])
    prompt = torch.tensor([ids], device=mixture.router.weight.device)
    with torch.no_grad():
        out = mixture.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    mixture.route.gate = None
    return tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True), counts
