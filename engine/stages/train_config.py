"""The training config: frozen, validated, stored with the adapter it produces.

Defaults follow the papers (LoRA rank 8, alpha 16, learning rate 3e-4, 3 epochs, batch 32,
all linear projection modules, Alpaca-style prompts).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PROMPT_FORMATS = ("alpaca", "chat")


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int = Field(default=8, ge=1, le=1024)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    learning_rate: float = Field(default=3e-4, gt=0.0, le=1.0)
    epochs: int = Field(default=3, ge=1, le=100)
    batch_size: int = Field(default=32, ge=1, le=4096)
    """effective batch: micro_batch x gradient accumulation"""
    micro_batch: int = Field(default=4, ge=1, le=1024)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0.0, le=0.5)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    max_length: int = Field(default=1024, ge=16, le=32768)
    """examples longer than this (prompt + response, in tokens) are cut at the end"""
    prompt_format: Literal["alpaca", "chat"] = "alpaca"
    val_fraction: float = Field(default=0.05, ge=0.0, le=0.5)
    """held out for validation loss each epoch (at least one example when > 0 and there are 2+)"""
    checkpoint_every: int = Field(default=50, ge=1)
    """optimizer steps between checkpoints (cancel also writes one)"""
    keep_checkpoints: int = Field(default=2, ge=1, le=100)
    seed: int = 0
    include_pending: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantize: Literal["auto", "4bit", "none"] = "auto"
    """auto: QLoRA (4-bit NF4) on CUDA, plain LoRA on CPU"""
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
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


OPTIONS: list[tuple[str, str, type, str]] = [
    # (flag, field, type, help)
    ("--rank", "rank", int, "LoRA rank (default 8)"),
    ("--alpha", "alpha", float, "LoRA alpha (default 16)"),
    ("--dropout", "dropout", float, "LoRA dropout (default 0.05)"),
    ("--lr", "learning_rate", float, "peak learning rate (default 3e-4)"),
    ("--epochs", "epochs", int, "passes over the training set (default 3)"),
    ("--batch-size", "batch_size", int, "effective batch size (default 32)"),
    ("--micro-batch", "micro_batch", int, "examples per forward pass (default 4; lower it on out-of-memory)"),
    ("--schedule", "schedule", str, "cosine, linear or constant decay after warmup (default cosine)"),
    ("--warmup-ratio", "warmup_ratio", float, "fraction of steps spent warming up (default 0.03)"),
    ("--max-length", "max_length", int, "longest example in tokens (default 1024)"),
    ("--prompt-format", "prompt_format", str, "alpaca (as generation) or chat (the model's chat template)"),
    ("--val-fraction", "val_fraction", float, "held-out fraction for validation loss (default 0.05)"),
    ("--checkpoint-every", "checkpoint_every", int, "optimizer steps between checkpoints (default 50)"),
    ("--seed", "seed", int, "data order, held-out split, LoRA init and dropout (default 0)"),
    ("--device", "device", str, "auto, cpu or cuda"),
    ("--quantize", "quantize", str, "auto (4-bit QLoRA on CUDA), 4bit or none"),
    ("--gradient-checkpointing", "gradient_checkpointing", str, "auto (on with CUDA), on or off"),
    ("--max-steps", "max_steps", int, "stop after this many optimizer steps (0: all epochs)"),
]
RUN_CONTROL = ("checkpoint_every", "max_steps", "keep_checkpoints")
"""may change when resuming: they do not change what the finished adapter is trained on"""


def build(options: dict[str, object], base: TrainConfig | None = None) -> TrainConfig:
    data = (base or TrainConfig()).model_dump()
    data.update(options)
    return TrainConfig.model_validate(data)


def describe_errors(exc: Exception) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    flags = {name: flag for flag, name, _, _ in OPTIONS}
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"{flags.get(loc, '--' + loc.replace('_', '-')) if loc else 'options'}: {err['msg']}")
    return "; ".join(lines)
