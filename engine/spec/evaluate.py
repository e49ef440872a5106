"""The evaluation's settings: which sets, which models, how many shots. The same settings on the
same files continue (or reuse) the same evaluation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.spec.stage import Knob, knobs_of


class EvalSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    data: tuple[str, ...] = ()
    """labelled .jsonl or PubMedQA .json (repeatable)"""
    pubmedqa: str | None = None
    """a PubMedQA file in the ori_pqal.json layout"""
    models: tuple[str, ...] = ()
    """base, EXPERT:QUANT, base+EXPERT, hf:base, hf:EXPERT (the first is the baseline; default: base, current expert)"""
    shots: int = Field(default=0, ge=0, le=16)
    """demonstrations from the training pool"""
    limit: int | None = Field(default=None, ge=1)
    """a fixed random subset of N items per set"""
    max_tokens: int = Field(default=128, ge=1, le=4096)
    """answer length for free-form sets"""
    seeds: bool = True
    """score the held-out seeds"""
    off_domain: bool = True
    """score the shipped general (off-domain) set"""


META: dict[str, dict[str, object]] = {
    "data": {"label": "data .jsonl (a.jsonl,b.jsonl)", "metavar": "FILE"},
    "pubmedqa": {"label": "PubMedQA .json", "metavar": "FILE"},
    "models": {"flag": "--model", "label": "models (baseline first)"},
    "limit": {"label": "items per set"},
    "max_tokens": {"form": False},
    "seeds": {"label": "held-out seeds", "widget_id": "use-seeds"},
    "off_domain": {"label": "off-domain check", "widget_id": "off-domain"},
}


def knobs() -> tuple[Knob, ...]:
    return knobs_of(EvalSettings, meta=META)
