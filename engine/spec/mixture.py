"""The router config of a mixture (Self-MoE): frozen, validated, stored with the mixture.

Only the router is trained: one linear layer (hidden size -> number of experts) shared by every
decoder layer, routing each token to its top-k experts; the base and the experts stay frozen. The
defaults follow the paper (top-1 routing, next-token loss on responses, the experts' own data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.spec.stage import Knob, knobs_of
from engine.spec.stage import build as build_from
from engine.spec.stage import describe_errors as describe

Routing = Literal["router", "random", "uniform"]
"""how tokens are routed in an evaluation or a chat: the learned router, a random expert per token
(the paper's baseline), or every expert at an equal weight"""


class RouterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    top_k: int = Field(default=1, ge=1, le=8)
    """experts each token is routed to (the paper prefers 1)"""
    per_expert: int = Field(default=0, ge=0)
    """training examples taken from each expert's data (0: all of them)"""
    learning_rate: float = Field(default=1e-3, gt=0.0, le=1.0)
    """peak learning rate of the router"""
    epochs: int = Field(default=1, ge=1, le=100)
    """passes over the experts' combined data"""
    batch_size: int = Field(default=8, ge=1, le=4096)
    """effective batch size: micro-batch x gradient accumulation"""
    micro_batch: int = Field(default=4, ge=1, le=1024)
    """examples per forward pass (lower it on out-of-memory)"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0.0, le=0.5)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    max_length: int = Field(default=1024, ge=16, le=32768)
    """longest example in tokens (prompt + response)"""
    val_fraction: float = Field(default=0.05, ge=0.0, le=0.5)
    """held-out fraction: validation loss and the routing shares per domain"""
    checkpoint_every: int = Field(default=25, ge=1)
    """optimizer steps between checkpoints (cancel also writes one)"""
    keep_checkpoints: int = Field(default=2, ge=1, le=100)
    seed: int = 0
    """data order, sampling per expert, held-out split and the router's initial weights"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantize: Literal["auto", "4bit", "none"] = "auto"
    """auto: a 4-bit NF4 base on CUDA, full precision on CPU"""
    gradient_checkpointing: Literal["auto", "on", "off"] = "off"
    max_steps: int = Field(default=0, ge=0)
    """stop after this many optimizer steps (0: run every epoch)"""

    @model_validator(mode="after")
    def _batches_fit(self) -> RouterConfig:
        if self.batch_size % self.micro_batch:
            raise ValueError(f"batch size {self.batch_size} is not a multiple of micro-batch {self.micro_batch}")
        return self

    @property
    def accumulation(self) -> int:
        return self.batch_size // self.micro_batch


_HIDDEN: dict[str, object] = {"form": False}
META: dict[str, dict[str, object]] = {
    "top_k": {"label": "experts per token"},
    "per_expert": {"label": "per expert (0: all)"},
    "learning_rate": {"flag": "--lr", "label": "learning rate", "widget_id": "lr"},
    "micro_batch": {"label": "micro-batch"},
    "schedule": _HIDDEN,
    "warmup_ratio": _HIDDEN,
    "weight_decay": {**_HIDDEN, "cli": False},
    "max_grad_norm": {**_HIDDEN, "cli": False},
    "max_length": {"label": "max length (tokens)"},
    "val_fraction": _HIDDEN,
    "checkpoint_every": {"label": "checkpoint every (steps)", "run_control": True},
    "keep_checkpoints": {**_HIDDEN, "cli": False, "run_control": True},
    "seed": _HIDDEN,
    "device": _HIDDEN,
    "quantize": _HIDDEN,
    "gradient_checkpointing": _HIDDEN,
    "max_steps": {"label": "max steps (0: all)", "run_control": True},
}


def knobs() -> tuple[Knob, ...]:
    return knobs_of(RouterConfig, None, META)


def run_control() -> tuple[str, ...]:
    """Knobs that may change when resuming: they do not change what the router is trained on."""
    return tuple(k.name for k in knobs() if k.run_control)


def build(options: dict[str, object], base: RouterConfig | None = None) -> RouterConfig:
    return build_from(RouterConfig, knobs(), options, base)  # type: ignore[no-any-return]


def describe_errors(exc: Exception) -> str:
    return describe(exc, knobs())
