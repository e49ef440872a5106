"""Setting a generation up: open or resume it (one frozen config), its seed pool, per-item seeds,
and the live tally its progress events report."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.backends import registry
from engine.errors import UserError
from engine.events import Progress
from engine.spec.generate import GenerateConfig
from engine.spec.kinds import Phase
from engine.stages import models
from engine.stages.context import Context
from engine.store import generation as store
from engine.store import seeds
from engine.store.records import Generation, Seed


def item_seed(base: int, stage: str, *key: int | str) -> int:
    text = f"{base}/{stage}/" + "/".join(str(k) for k in key)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


@dataclass
class Tally:
    """Live figures for progress events and the final summary."""

    prompts: int = 0
    parsed: int = 0
    kept: int = 0
    responses: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    seconds: float = 0.0
    brainstorm_tokens: int = 0
    kept_this_run: int = 0
    workers: Callable[[], list[dict[str, Any]]] | None = None
    """per-worker rates when generation is spread over workers (Ray)"""

    def tokens_per_s(self) -> float | None:
        return round(self.tokens / self.seconds, 1) if self.seconds > 0 else None

    def attach(self, progress: Progress) -> None:
        progress.extra = {
            "counters": {
                "prompts": self.prompts,
                "parsed": self.parsed,
                "kept": self.kept,
                "dropped": sum(self.dropped.values()),
                "responses": self.responses,
            },
            "dropped": dict(self.dropped.most_common()),
            "tokens_per_s": self.tokens_per_s(),
            "tokens_per_kept_task": round(self.brainstorm_tokens / self.kept_this_run, 1)
            if self.kept_this_run
            else None,
        }
        if self.workers is not None:
            progress.extra["workers"] = self.workers()


def balanced_sample(pool: list[Seed], k: int, rng: random.Random) -> list[Seed]:
    """k seeds spread over the task types: types in a random order, one seed of each in turn, so a
    set dominated by one type (a hundred yes/no questions) still shows the model the others."""
    groups: dict[str, list[Seed]] = {}
    for s in pool:
        groups.setdefault(s.task_type or "general", []).append(s)
    order = rng.sample(sorted(groups), len(groups))
    for kind in order:
        rng.shuffle(groups[kind])
    picked: list[Seed] = []
    while len(picked) < min(k, len(pool)):
        for kind in order:
            if groups[kind] and len(picked) < k:
                picked.append(groups[kind].pop())
    return picked


def seed_pool(ctx: Context, set_name: str) -> list[Seed]:
    project = ctx.need_project()
    if set_name and seeds.get_set(ctx.db, project, set_name) is None:
        raise UserError(f"project {project.name!r} has no seed set {set_name!r}")
    found = seeds.list_seeds(ctx.db, project, set_name=set_name, held_out=False)  # reserved seeds stay unseen
    if not found:
        raise UserError(
            f"project {project.name!r} has no seed tasks: import some first (selfspec-tui seeds import FILE)"
        )
    return sorted(found, key=lambda s: s.id)


SETTLED = ("grounded", "prompt_style", "weights")
"""settings whose `auto` a new generation resolves once (settle_auto)"""


def settle_auto(ctx: Context, config: GenerateConfig, fmt: str, path: Any) -> GenerateConfig:
    """A new generation's `auto` choices made once and stored: grounded tasks when the project has a
    corpus and seeds with inputs; chat prompts when the model has a chat template; an F16 copy of a
    small quantized GGUF on llama.cpp (engine.backends.f16_copy)."""
    from engine.backends.chat_template import read_template
    from engine.backends.f16_copy import auto_choice
    from engine.store import corpus

    project = ctx.need_project()
    if config.respond_with:
        from engine.stages.evaluate import resolve_model

        resolve_model(ctx, project, config.respond_with)  # an unknown or unexported expert is refused now
    update: dict[str, Any] = {}
    has_inputs = any(s.input.strip() for s in seed_pool(ctx, config.seed_set))
    if config.grounded == "auto":
        update["grounded"] = "on" if has_inputs and corpus.chunk_ids(ctx.db, project) else "off"
    elif config.grounded == "on" and not has_inputs:
        raise UserError("--grounded on needs seed tasks with an input (a passage) to show the model")
    if config.prompt_style == "auto":
        chat = not config.respond_with and fmt in ("gguf", "hf") and read_template(fmt, path) is not None
        update["prompt_style"] = "chat" if chat else "completion"
    copies = fmt == "gguf" and registry.runtime_for(fmt, config.backend).f16_copy
    if config.weights == "auto":
        update["weights"] = auto_choice(path) if copies else "file"
    elif config.weights == "f16" and not copies:
        raise UserError("--weights f16 is for a GGUF model generating on llama.cpp")
    return config.model_copy(update=update) if update else config


def open_generation(
    ctx: Context, options: dict[str, Any], target: int | None, resume: int | None, new: bool
) -> Generation:
    """The generation to run: the one named by --resume, the project's unfinished newest one, or a new one.

    Explicit options that differ from an unfinished generation's config are refused rather than
    silently ignored or mixed into its data.
    """
    from engine.spec.generate import build_config, describe_errors, knobs
    from engine.stages.resume import fresh, reconcile

    project = ctx.need_project()
    if target is not None and target < 1:
        raise UserError("--target must be at least 1")
    if resume is not None:
        gen = store.get(ctx.db, resume)
        if gen.project_id != project.id:
            raise UserError(f"generation {resume} belongs to another project")
    else:
        last = store.latest(ctx.db, project)
        gen = last if last and last.phase != "done" and not new else None  # type: ignore[assignment]
    if gen is None:
        config = fresh({"seed": random.randrange(2**31), **options}, build_config, describe_errors)
        fmt, path, _ = models.resolve(ctx.db, project.base_model)
        registry.runtime_for(fmt, config.backend)  # an unknown or unfit runtime is refused before anything is stored
        config = settle_auto(ctx, config, fmt, path)
        body = {"generate": config.model_dump(mode="json"), "model": project.base_model}
        gen = store.create(ctx.db, project, body, target or 5000)
        ctx.log(f"new generation {gen.id} (target {gen.target}, seed {config.seed})")
        return gen
    stored = GenerateConfig.model_validate(gen.config["generate"])
    # "auto" asks the engine to choose, and this generation chose when it was created
    options = {k: v for k, v in options.items() if not (k in SETTLED and v == "auto")}
    control = {k.name for k in knobs() if k.run_control}
    what, instead = f"generation {gen.id}", "(ctrl+n in the TUI) to start another generation"
    updated, changed = reconcile(what, stored, options, build_config, control, describe_errors, instead)
    if changed:
        store.set_config(ctx.db, gen.id, {**gen.config, "generate": updated.model_dump(mode="json")})
        if gen.phase == Phase.DONE:
            store.set_phase(ctx.db, gen.id, Phase.BRAINSTORM)
        gen = store.get(ctx.db, gen.id)  # this run goes on with the changed settings
    if target is not None and target != gen.target:
        store.set_target(ctx.db, gen.id, target)
        if gen.phase == Phase.DONE and target > gen.target:
            store.set_phase(ctx.db, gen.id, Phase.BRAINSTORM)
        gen = store.get(ctx.db, gen.id)
    ctx.log(f"resuming generation {gen.id} ({gen.phase}, target {gen.target})")
    return gen
