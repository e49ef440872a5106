"""What every runtime implements: sampling settings, completions, and the Generator and Scorer
protocols. Pure types (no heavy imports), shared by the runtimes, the stages and the test plugin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.spec.kinds import FinishReason
from engine.spec.prompts import cut_at_stop

__all__ = ["Completion", "Generator", "ModelFile", "Sampling", "Scorer", "Watch", "cut_at_stop", "watched"]


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
    endpoint: str = ""
    """an OpenAI-compatible server's base URL (the endpoint runtime)"""
    served_model: str = ""
    """the model name the server knows (default: the project's base model name)"""
    tensor_parallel: int = 1
    data_parallel: int = 1
    chat: bool = False
    """prompts are rendered through the model's chat template: its markers are special tokens"""


Watch = Callable[[str, int], "int | None"]
"""Looks at a completion's text and token count so far; returns a character offset to end it there
(finish "stop"), or None to go on. Runtimes that cannot look mid-generation apply it to the final text."""


class Generator(Protocol):
    name: str
    context_length: int
    batch_size: int

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        seeds: Sequence[int],
        cancel: Callable[[], bool],
        watch: Watch | None = None,
    ) -> list[Completion]: ...

    def close(self) -> None: ...


class Scorer(Protocol):
    name: str

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]: ...

    def generate(self, prompt: str, max_tokens: int) -> str: ...

    def close(self) -> None: ...


def watched(c: Completion, watch: Watch | None) -> Completion:
    """A finished completion as a runtime that watched it would have ended it: the watch is asked at
    every line end, with a token count prorated by characters."""
    if watch is None or not c.text:
        return c
    at = c.text.find("\n")
    while at >= 0:
        cut = watch(c.text[: at + 1], round(c.tokens * (at + 1) / len(c.text)))
        if cut is not None:
            return Completion(c.text[:cut], "stop", c.prompt_tokens, round(c.tokens * cut / len(c.text)))
        at = c.text.find("\n", at + 1)
    return c
