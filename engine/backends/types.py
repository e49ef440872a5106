"""What every runtime implements: sampling settings, completions, and the Generator and Scorer
protocols. Pure types (no heavy imports), shared by the runtimes, the stages and the test plugin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.spec.kinds import FinishReason
from engine.spec.prompts import cut_at_stop

__all__ = ["Completion", "Generator", "ModelFile", "Sampling", "Scorer", "cut_at_stop"]


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    finish: FinishReason
    prompt_tokens: int
    tokens: int


@dataclass(frozen=True)
class ModelFile:
    """A model to open: its display name, file format ("gguf", "hf" or a plugin's), path and LoRA."""

    name: str
    format: str
    path: Path
    lora: Path | None = None


@dataclass(frozen=True)
class GeneratorOptions:
    threads: int
    context: int
    device: str = "auto"
    batch_size: int = 8


class Generator(Protocol):
    name: str
    context_length: int
    batch_size: int

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int], cancel: Callable[[], bool]
    ) -> list[Completion]: ...

    def close(self) -> None: ...


class Scorer(Protocol):
    name: str

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]: ...

    def generate(self, prompt: str, max_tokens: int) -> str: ...

    def close(self) -> None: ...
