"""The training config: frozen, validated, stored with the adapter it produces.

Defaults follow the papers (LoRA rank 8, alpha 16, learning rate 3e-4, 3 epochs, batch 32,
all linear projection modules, Alpaca-style prompts).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.spec.prompts import PROMPT_FORMATS, PromptFormat
from engine.spec.stage import Knob, knobs_of
from engine.spec.stage import build as build_from
from engine.spec.stage import describe_errors as describe

__all__ = ["PROMPT_FORMATS", "TrainConfig", "build", "describe_errors", "knobs", "run_control"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    rank: int = Field(default=8, ge=1, le=1024)
    """LoRA rank"""
    alpha: float = Field(default=16.0, gt=0)
    """LoRA alpha"""
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """LoRA dropout"""
    learning_rate: float = Field(default=3e-4, gt=0.0, le=1.0)
    """peak learning rate"""
    epochs: int = Field(default=3, ge=1, le=100)
    """passes over the training set"""
    batch_size: int = Field(default=32, ge=1, le=4096)
    """effective batch size: micro-batch x gradient accumulation"""
    micro_batch: int = Field(default=4, ge=1, le=1024)
    """examples per forward pass (lower it on out-of-memory)"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """learning-rate decay after warmup"""
    warmup_ratio: float = Field(default=0.03, ge=0.0, le=0.5)
    """fraction of steps spent warming up"""
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    max_length: int = Field(default=1024, ge=16, le=32768)
    """longest example in tokens (prompt + response; longer ones are cut at the end)"""
    prompt_format: PromptFormat = "alpaca"
    """alpaca (as generation) or chat (the model's chat template)"""
    val_fraction: float = Field(default=0.05, ge=0.0, le=0.5)
    """held-out fraction for validation loss each epoch (at least one example when > 0 and there are 2+)"""
    checkpoint_every: int = Field(default=50, ge=1)
    """optimizer steps between checkpoints (cancel also writes one)"""
    keep_checkpoints: int = Field(default=2, ge=1, le=100)
    seed: int = 0
    """data order, held-out split, LoRA init and dropout"""
    include_pending: bool = False
    """also train on examples not reviewed yet"""
    generations: tuple[int, ...] = ()
    """train only on examples of these generations (round 2: the expert's answers; default: all)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """where to train"""
    quantize: Literal["auto", "4bit", "none"] = "auto"
    """auto: QLoRA (4-bit NF4) on CUDA, plain LoRA on CPU"""
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    """auto: on with CUDA"""
    max_steps: int = Field(default=0, ge=0)
    """stop after this many optimizer steps (0: run every epoch); for quick trials and the demo"""

    @model_validator(mode="after")
    def _batches_fit(self) -> TrainConfig:
        if self.batch_size % self.micro_batch:
            raise ValueError(f"batch size {self.batch_size} is not a multiple of micro-batch {self.micro_batch}")
        return self

    @property
    def accumulation(self) -> int:
        return self.batch_size // self.micro_batch


class TrainRun(BaseModel):
    """Settings of a training run that are not part of the adapter's config."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: str | None = None
    """adapter name (default expert-N)"""
    processes: int = Field(default=1, ge=1, le=64)
    """data-parallel training processes started by torchrun (one per GPU; on CPU they share the cores)"""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """with several processes: ddp (each holds the whole model) or fsdp (each holds a shard of a bf16 base)"""


_HIDDEN: dict[str, object] = {"form": False}
META: dict[str, dict[str, object]] = {
    "rank": {"label": "LoRA rank"},
    "alpha": {"label": "LoRA alpha"},
    "dropout": _HIDDEN,
    "learning_rate": {"flag": "--lr", "label": "learning rate", "widget_id": "lr"},
    "micro_batch": {"label": "micro-batch"},
    "schedule": _HIDDEN,
    "warmup_ratio": _HIDDEN,
    "weight_decay": {**_HIDDEN, "cli": False},
    "max_grad_norm": {**_HIDDEN, "cli": False},
    "max_length": {"label": "max length (tokens)"},
    "prompt_format": {"label": "prompt format"},
    "val_fraction": _HIDDEN,
    "checkpoint_every": {"label": "checkpoint every (steps)", "run_control": True},
    "keep_checkpoints": {**_HIDDEN, "cli": False, "run_control": True},
    "seed": _HIDDEN,
    "include_pending": {"label": "include pending"},
    "generations": {**_HIDDEN, "flag": "--generation", "metavar": "ID"},
    "device": _HIDDEN,
    "quantize": _HIDDEN,
    "gradient_checkpointing": _HIDDEN,
    "max_steps": {"label": "max steps (0: all)", "run_control": True},
}
ORDER = (
    "rank alpha dropout learning_rate epochs batch_size micro_batch schedule warmup_ratio weight_decay"
    " max_grad_norm max_length prompt_format val_fraction checkpoint_every keep_checkpoints seed include_pending"
    " generations device quantize gradient_checkpointing max_steps"
).split()


def knobs() -> tuple[Knob, ...]:
    run = knobs_of(
        TrainRun,
        meta={
            "name": {"label": "adapter name (blank: expert-N)"},
            "processes": {"label": "processes (torchrun)"},
            "strategy": {"label": "strategy (2+ processes)"},
        },  # fmt: skip
    )
    return run + knobs_of(TrainConfig, {name: (name,) for name in ORDER}, META)


def run_control() -> tuple[str, ...]:
    """Knobs that may change when resuming: they do not change what the finished adapter is trained on."""
    return tuple(k.name for k in knobs() if k.run_control and k.path[0] in TrainConfig.model_fields)


def build(options: dict[str, object], base: TrainConfig | None = None) -> TrainConfig:
    return build_from(TrainConfig, knobs(), options, base)  # type: ignore[no-any-return]


def describe_errors(exc: Exception) -> str:
    return describe(exc, knobs())
