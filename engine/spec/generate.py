"""The generation config: frozen, validated, stored with the generation and every example's provenance.

Field descriptions are the command line's help; `META` adds flags, form labels and which knobs the
TUI form shows."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.spec.stage import Knob, build, knobs_of
from engine.spec.stage import describe_errors as describe

TEMPLATE_VERSION = "ss-v4"
"""ss-v2: answer demonstrations shared per block of tasks, brainstorm token limit sized from the seeds.
ss-v3: answer filters (loops, off-task answers, embedding near-duplicates), a passage relevance floor,
grounded tasks, prompts through the model's chat template, self-judging.
ss-v4: retrieved passages shown without repeats, answers ended once they repeat themselves, an F16
copy of a small quantized GGUF to compute with.
A stored older config reads back with its own behaviour (see GenerateConfig._older_defaults)."""

PromptStyle = Literal["auto", "chat", "completion"]
Switch = Literal["auto", "on", "off"]
OFF_BEFORE_V3: dict[str, object] = {
    "retrieval_floor": 0.0,
    "grounded": "off",
    "prompt_style": "completion",
    "judge": False,
    "balanced_demos": False,
    "label_answers": False,
}
OFF_BEFORE_V4: dict[str, object] = {"merge_passages": False, "stop_doomed": False, "weights": "file"}
FILTERS_OFF_BEFORE_V3: dict[str, object] = {
    "semantic_threshold": 0.0,
    "max_repeat_share": 1.0,
    "min_compression": 0.0,
    "min_answer_similarity": -1.0,
}


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Sampling(Strict):
    temperature: float = Field(default=1.0, ge=0.0, le=5.0)
    top_p: float = Field(default=0.98, gt=0.0, le=1.0)
    max_tokens: int = Field(default=768, ge=1, le=32768)


class FilterConfig(Strict):
    rouge_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    """drop a task whose ROUGE-L F with any seed or kept instruction is above this"""
    min_words: int = Field(default=4, ge=1)
    """shortest instruction kept, in words"""
    max_words: int = Field(default=150, ge=1)
    """longest instruction kept, in words"""
    max_input_words: int = Field(default=400, ge=1)
    """longest input kept, in words"""
    semantic_threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    """drop a task whose embedding cosine with a seed or kept task is above this (0: off)"""
    max_repeat_share: float = Field(default=0.3, gt=0.0, le=1.0)
    """drop an answer when more than this share of its word 4-grams repeat earlier ones (1: off)"""
    min_compression: float = Field(default=0.2, ge=0.0, lt=1.0)
    """drop a long answer that zlib compresses below this share of its size: a loop (0: off)"""
    min_answer_similarity: float = Field(default=0.1, ge=-1.0, le=1.0)
    """drop an answer of 5 words or more whose embedding cosine with its task is below this (-1: off)"""


class GenerateConfig(Strict):
    template: str = TEMPLATE_VERSION
    seed: int = 0
    """every prompt's randomness derives from (seed, stage, item index)"""
    seed_set: str = ""
    """restrict demonstrations to one seed set ('' = all of the project's seeds)"""
    k_seeds: int = Field(default=3, ge=1, le=20)
    """demonstrations per brainstorm prompt"""
    k_generated: int = Field(default=0, ge=0, le=20)
    """how many of the brainstorm demonstrations come from already kept tasks"""
    tasks_per_prompt: int = Field(default=4, ge=1, le=20)
    """new tasks asked of each prompt"""
    topics: tuple[str, ...] = ()
    """a domain topic to cover (repeatable)"""
    brainstorm: Sampling = Sampling()
    respond: Sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=512)
    retrieval: bool = True
    """answer with retrieved corpus passages (off: the paper's non-retrieval variant)"""
    passages: int = Field(default=5, ge=1, le=20)
    """retrieved passages per answer"""
    merge_passages: bool = True
    """show each retrieved sentence once: leave out a chunk the task already shows, merge chunks of a
    document that overlap or touch"""
    retrieval_floor: float = Field(default=0.3, ge=0.0, le=1.0)
    """a retrieved passage scoring below this cosine is not shown to the model (0: show all)"""
    demos: int = Field(default=5, ge=0, le=20)
    """seed demonstrations per answer prompt"""
    grounded: Switch = "auto"
    """each brainstorm prompt carries a corpus passage that becomes the new task's input (auto: on
    when the project has a corpus)"""
    prompt_style: PromptStyle = "auto"
    """chat: prompts go through the model's chat template; completion: plain text (auto: chat when the
    model has a template)"""
    stop_doomed: bool = True
    """end an answer as soon as it repeats itself enough to be dropped (its later tokens are wasted)"""
    judge: bool = False
    """the model grades each answer 1-5 (by the likelihood of each grade) and low grades are dropped"""
    judge_threshold: float = Field(default=3.0, ge=1.0, le=5.0)
    """lowest expected grade kept when judging"""
    label_answers: bool = True
    """answer a task whose type's seeds answer from a small label set (yes/no/maybe, ...) with the label
    the model scores highest, after removing the label bias measured on those seeds"""
    calibration_seeds: int = Field(default=24, ge=0, le=10_000)
    """seeds per label type the label bias is measured on, balanced across labels (0: all of them)"""
    balanced_demos: bool = True
    """demonstrations of different task types (a seed set dominated by one type still shows the others)"""
    respond_with: str = ""
    """answer with this trained expert instead of the base (iterative self-specialization, round 2)"""
    tasks_from: int = Field(default=0, ge=0)
    """take the tasks of this earlier generation instead of brainstorming (with --respond-with)"""
    filters: FilterConfig = FilterConfig()
    batch_size: int = Field(default=8, ge=1, le=256)
    """sequences decoded together (llama.cpp slots, a transformers batch, concurrent endpoint requests)"""
    demo_block: int = Field(default=16, ge=1, le=4096)
    """tasks answered in one call with one set of demonstrations (their shared prefix is evaluated once)"""
    size_from_seeds: bool = True
    """size the brainstorm token limit from the seeds' lengths; never start a task the limit cuts off"""
    context: int = Field(default=4096, ge=256, le=131072)
    """context window to use, in tokens"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """where the transformers runtime runs"""
    weights: Literal["auto", "file", "f16"] = "auto"
    """llama.cpp: compute with the model file as it is, or with an F16 copy of its weights made once
    (about 2x faster prompts on CPU for types like Q4_1); auto: f16 for a quantized GGUF whose copy
    is at most 1 GiB (a generation stored before this setting existed keeps the file)"""
    backend: str = "auto"
    """runtime: auto (llama.cpp for GGUF, transformers for HF folders) or a registered runtime's name"""
    endpoint: str = ""
    """base URL of an OpenAI-compatible completions server to generate with (implies --backend endpoint)"""
    served_model: str = ""
    """the model name the endpoint serves (default: the project's base model name)"""
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    """vLLM: GPUs one model instance is split across"""
    data_parallel_size: int = Field(default=1, ge=1, le=64)
    """vLLM: model instances serving requests side by side"""
    ray: str = ""
    """spread generation over Ray workers: local:N starts N on this machine, or a running cluster's
    address (host:6379, ray://host:10001); blank: this process alone"""
    ray_workers: int = Field(default=0, ge=0, le=1024)
    """workers on a cluster given by address (0: one per GPU, else one per node)"""
    max_prompts: int = Field(default=0, ge=0)
    """stop brainstorming after this many prompts even if the target is not reached (0: 20 x target + 20)"""

    @model_validator(mode="before")
    @classmethod
    def _older_defaults(cls, data: object) -> object:
        """A config stored by an older template keeps its behaviour: ss-v1 has per-task
        demonstrations and a fixed limit; before ss-v3 no answer filter, floor, grounding or chat;
        before ss-v4 passages as retrieved, answers run to their limit, and the model file as it is."""
        if not isinstance(data, dict):
            return data
        if data.get("template") in ("ss-v1", "ss-v2"):
            filters = data.get("filters")
            filters = {**FILTERS_OFF_BEFORE_V3, **filters} if isinstance(filters, dict) else FILTERS_OFF_BEFORE_V3
            data = {**OFF_BEFORE_V3, **data, "filters": filters}
        if data.get("template") in ("ss-v1", "ss-v2", "ss-v3"):
            data = {**OFF_BEFORE_V4, **data}
        if data.get("template") == "ss-v1":
            data = {"demo_block": 1, "size_from_seeds": False, **data}
        if data.get("endpoint") and data.get("backend", "auto") == "auto":
            data = {**data, "backend": "endpoint"}
        return data

    @field_validator("ray")
    @classmethod
    def _ray_target(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("local") and not re.fullmatch(r"local:([1-9]\d{0,2})", value):
            raise ValueError("write local:N with N workers from 1 to 256 (local:2), or a cluster's address")
        if value.startswith("local") and int(value[6:]) > 256:
            raise ValueError("local:N takes at most 256 workers")
        return value

    def prompt_budget(self, target: int) -> int:
        return self.max_prompts or 20 * target + 20


class GenerateRun(Strict):
    """Settings of a generation that are not part of its data identity."""

    target: int = Field(default=5000, ge=1, description="examples wanted (on resume: change the target)")


# option name -> (section, field) in GenerateConfig: the CLI's flags and the TUI's form fields
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
    "retrieval_floor": ("retrieval_floor",),
    "merge_passages": ("merge_passages",),
    "stop_doomed": ("stop_doomed",),
    "grounded": ("grounded",),
    "prompt_style": ("prompt_style",),
    "judge": ("judge",),
    "judge_threshold": ("judge_threshold",),
    "balanced_demos": ("balanced_demos",),
    "label_answers": ("label_answers",),
    "calibration_seeds": ("calibration_seeds",),
    "respond_with": ("respond_with",),
    "tasks_from": ("tasks_from",),
    "rouge_threshold": ("filters", "rouge_threshold"),
    "semantic_threshold": ("filters", "semantic_threshold"),
    "max_repeat_share": ("filters", "max_repeat_share"),
    "min_compression": ("filters", "min_compression"),
    "min_answer_similarity": ("filters", "min_answer_similarity"),
    "min_words": ("filters", "min_words"),
    "max_words": ("filters", "max_words"),
    "max_input_words": ("filters", "max_input_words"),
    "batch_size": ("batch_size",),
    "demo_block": ("demo_block",),
    "size_from_seeds": ("size_from_seeds",),
    "context": ("context",),
    "device": ("device",),
    "weights": ("weights",),
    "backend": ("backend",),
    "endpoint": ("endpoint",),
    "served_model": ("served_model",),
    "tensor_parallel_size": ("tensor_parallel_size",),
    "data_parallel_size": ("data_parallel_size",),
    "ray": ("ray",),
    "ray_workers": ("ray_workers",),
    "max_prompts": ("max_prompts",),
}
_HIDDEN: dict[str, object] = {"form": False}
# flags, form labels and help for the nested sampling fields (shared sub-models say nothing of which stage)
META: dict[str, dict[str, object]] = {
    "seed": {"default": None, "label": "seed (blank: random)", "help": "random seed of the generation (a new one)"},
    "seed_set": _HIDDEN,
    "k_seeds": {"flag": "--k", "label": "demos per brainstorm"},
    "k_generated": _HIDDEN,
    "topics": {**_HIDDEN, "flag": "--topic"},
    "temperature": {"help": "brainstorm sampling temperature"},
    "top_p": {"label": "top-p", "help": "brainstorm top-p"},
    "max_tokens": {"label": "brainstorm max tokens", "help": "brainstorm max new tokens"},
    "response_temperature": {**_HIDDEN, "help": "answer temperature (0: greedy)"},
    "response_top_p": {**_HIDDEN, "help": "answer top-p"},
    "response_max_tokens": {"label": "answer max tokens", "help": "answer max new tokens"},
    "passages": {"label": "passages per answer"},
    "demos": {"label": "demos per answer"},
    "rouge_threshold": {"label": "ROUGE-L threshold"},
    "retrieval_floor": {**_HIDDEN, "label": "passage floor"},
    "merge_passages": _HIDDEN,
    "stop_doomed": _HIDDEN,
    "grounded": {"label": "grounded tasks"},
    "prompt_style": {"label": "prompt style"},
    "judge": {"label": "self-judge answers"},
    "judge_threshold": _HIDDEN,
    "balanced_demos": _HIDDEN,
    "label_answers": _HIDDEN,
    "calibration_seeds": _HIDDEN,
    "respond_with": {"label": "round-2 expert"},
    "tasks_from": _HIDDEN,
    "semantic_threshold": _HIDDEN,
    "max_repeat_share": _HIDDEN,
    "min_compression": _HIDDEN,
    "min_answer_similarity": _HIDDEN,
    "min_words": _HIDDEN,
    "max_words": _HIDDEN,
    "max_input_words": _HIDDEN,
    "batch_size": {"label": "batch size"},
    "demo_block": _HIDDEN,
    "size_from_seeds": _HIDDEN,
    "context": _HIDDEN,
    "device": _HIDDEN,
    "weights": {"label": "weights (llama.cpp)"},
    "backend": _HIDDEN,
    "endpoint": {"label": "endpoint URL (blank: local)", "run_control": True},
    "served_model": _HIDDEN,
    "tensor_parallel_size": _HIDDEN,
    "data_parallel_size": _HIDDEN,
    "ray": {"label": "Ray (local:N or address)", "metavar": "local:N|ADDRESS", "run_control": True},
    "ray_workers": {**_HIDDEN, "run_control": True},
    "max_prompts": {**_HIDDEN, "run_control": True},
}


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cost_text(rate: float | None, target: int, done: int = 0, sample: int = 200) -> str:
    """What a target costs at a measured rate (examples per second), e.g.
    'about 14 h at 0.10 examples/s; 200 take 33 min'."""
    left = max(0, target - done)
    if not rate or rate <= 0:
        return "no generation rate measured on this machine for this model yet (a short run measures one)"
    per = f"{rate:.2f} examples/s" if rate >= 0.1 else f"{rate * 60:.2f} examples/min"
    head = f"about {_span(left / rate)} at {per}" + (f" for the {left} still to make" if done else "")
    return head + (f"; {sample} take {_span(sample / rate)}" if left > sample else "")


def knobs() -> tuple[Knob, ...]:
    run = knobs_of(GenerateRun, meta={"target": {"label": "target examples", "run_control": True}})
    return run + knobs_of(GenerateConfig, FLAT, META)


def build_config(options: dict[str, object], base: GenerateConfig | None = None) -> GenerateConfig:
    """A config from flat options over `base` (defaults when None); ValidationError names the option."""
    return build(GenerateConfig, knobs(), options, base)  # type: ignore[no-any-return]


def describe_errors(exc: Exception) -> str:
    """pydantic errors as '--flag: message' lines, with the CLI's option names."""
    return describe(exc, knobs())
