"""Chat sampling settings: the CLI's options, the TUI's fields and the serve protocol's checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.spec.stage import Knob, knobs_of


class ChatSampling(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    """sampling temperature (0: greedy)"""
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    """nucleus sampling: the smallest set of tokens whose probability reaches this"""
    max_tokens: int = Field(default=256, ge=1, le=32768)
    """longest reply, in tokens"""
    stop: tuple[str, ...] = ()
    """end a reply at this text (repeatable)"""


META: dict[str, dict[str, object]] = {
    "top_p": {"label": "top-p"},
    "max_tokens": {"label": "max tokens"},
    "stop": {"metavar": "TEXT", "form": False},
}


def knobs() -> tuple[Knob, ...]:
    return knobs_of(ChatSampling, meta=META)
