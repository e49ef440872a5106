"""The generation config: frozen, validated, stored with the generation and every example's provenance."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TEMPLATE_VERSION = "ss-v1"


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sampling(Strict):
    temperature: float = Field(default=1.0, ge=0.0, le=5.0)
    top_p: float = Field(default=0.98, gt=0.0, le=1.0)
    max_tokens: int = Field(default=768, ge=1, le=32768)


class FilterConfig(Strict):
    rouge_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    """drop a task whose ROUGE-L F with any seed or kept instruction is above this"""
    min_words: int = Field(default=4, ge=1)
    max_words: int = Field(default=150, ge=1)
    max_input_words: int = Field(default=400, ge=1)


class GenerateConfig(Strict):
    template: str = TEMPLATE_VERSION
    seed: int = 0
    """every prompt's randomness derives from (seed, stage, item index)"""
    seed_set: str = ""
    """restrict demonstrations to one seed set ('' = all of the project's seeds)"""
    k_seeds: int = Field(default=3, ge=1, le=20)
    k_generated: int = Field(default=0, ge=0, le=20)
    """how many of the brainstorm demonstrations come from already kept tasks"""
    tasks_per_prompt: int = Field(default=4, ge=1, le=20)
    topics: tuple[str, ...] = ()
    brainstorm: Sampling = Sampling()
    respond: Sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=512)
    retrieval: bool = True
    passages: int = Field(default=5, ge=1, le=20)
    demos: int = Field(default=5, ge=0, le=20)
    filters: FilterConfig = FilterConfig()
    batch_size: int = Field(default=8, ge=1, le=512)
    """prompts per generate() call (transformers backend; llama.cpp answers one at a time)"""
    context: int = Field(default=4096, ge=256, le=131072)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_prompts: int = Field(default=0, ge=0)
    """stop brainstorming after this many prompts even if the target is not reached (0: 20 x target + 20)"""

    def prompt_budget(self, target: int) -> int:
        return self.max_prompts or 20 * target + 20


# CLI/TUI option name -> (section, field) in GenerateConfig
FLAT: dict[str, tuple[str, ...]] = {
    "seed": ("seed",),
    "seed_set": ("seed_set",),
    "k_seeds": ("k_seeds",),
    "k_generated": ("k_generated",),
    "tasks_per_prompt": ("tasks_per_prompt",),
    "topics": ("topics",),
    "temperature": ("brainstorm", "temperature"),
    "top_p": ("brainstorm", "top_p"),
    "max_tokens": ("brainstorm", "max_tokens"),
    "response_temperature": ("respond", "temperature"),
    "response_top_p": ("respond", "top_p"),
    "response_max_tokens": ("respond", "max_tokens"),
    "retrieval": ("retrieval",),
    "passages": ("passages",),
    "demos": ("demos",),
    "rouge_threshold": ("filters", "rouge_threshold"),
    "min_words": ("filters", "min_words"),
    "max_words": ("filters", "max_words"),
    "max_input_words": ("filters", "max_input_words"),
    "batch_size": ("batch_size",),
    "context": ("context",),
    "device": ("device",),
    "max_prompts": ("max_prompts",),
}


def build_config(options: dict[str, object], base: GenerateConfig | None = None) -> GenerateConfig:
    """A config from flat options over `base` (defaults when None); ValidationError names the option."""
    data = (base or GenerateConfig()).model_dump()
    for key, value in options.items():
        path = FLAT[key]
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return GenerateConfig.model_validate(data)


def describe_errors(exc: Exception) -> str:
    """pydantic errors as 'option: message' lines, with the CLI's option names."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    reverse = {path: name for name, path in FLAT.items()}
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        name = reverse.get(loc, ".".join(loc)).replace("_", "-")
        lines.append(f"--{name}: {err['msg']}")
    return "; ".join(lines)
