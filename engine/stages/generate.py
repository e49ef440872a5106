"""Self-specialization data generation (Kang et al. 2023): brainstorm, filter, answer with retrieval.

A GenerationRun holds what both stages share (config, seeds, model, embedder, searcher) and runs
them in turn until the target is met: stage 1 in engine.stages.brainstorm, stage 2 in
engine.stages.respond, round 2 in engine.stages.round2. Each stage commits whole calls keyed by
prompt index or candidate, so a resumed generation produces what an uninterrupted one would.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from engine.backends import chat_template
from engine.errors import UserError
from engine.spec.generate import GenerateConfig
from engine.stages import models
from engine.stages.brainstorm_prompts import BrainstormPrompts
from engine.stages.context import Context
from engine.stages.filters import normalized
from engine.stages.gen_setup import Tally, item_seed, open_generation, seed_pool
from engine.stages.templates import (
    Wrap,
    completion,
)
from engine.store import generation as store
from engine.store import projects
from engine.store.records import Generation, Seed

if TYPE_CHECKING:
    from engine.backends.types import GeneratorOptions, ModelFile

__all__ = ["GenerationRun", "item_seed", "open_generation", "run_generation"]


class GenerationRun:
    """One generation being run: config, seeds, model and the dedup pools."""

    def __init__(self, ctx: Context, gen: Generation) -> None:
        self.ctx, self.gen = ctx, gen
        self.project = ctx.need_project()
        self.config = GenerateConfig.model_validate(gen.config["generate"])
        self.model_name = gen.config["model"]
        self.seeds = seed_pool(ctx, self.config.seed_set)
        self.seed_norms = {normalized(s.instruction) for s in self.seeds}
        self.grounded = self.config.grounded == "on"
        self.tally = Tally()
        self.generator: Any = None
        # prompts through the base's chat template (prompt style chat), however the model is opened
        fmt, path, _ = models.resolve(ctx.db, self.model_name)
        chat = self.config.prompt_style == "chat"
        self.base_wrap: Wrap = chat_template.wrapper(fmt, path, self.model_name) if chat else completion
        self.wrap: Wrap = self.base_wrap
        # set from the seeds by brainstorm_budget.plan_tokens
        self.limit, self.per_task = self.config.brainstorm.max_tokens, 0
        self.searcher: Any = None  # loaded on first need (embedder + index)
        self._embedder: Any = None
        self.prompts = BrainstormPrompts(self)
        self.label_scores: dict[int, dict[str, float]] = {}  # candidate id -> label log-likelihoods

    def embedder(self):  # type: ignore[no-untyped-def]
        """The project's embedder, loaded once (retrieval, embedding filters)."""
        if self._embedder is None:
            from engine.stages.corpus import project_embedder

            self._embedder = project_embedder(self.project)
        return self._embedder

    def load_model(self) -> None:
        from engine.backends import registry
        from engine.backends.types import GeneratorOptions, ModelFile
        from engine.cpu import free_cores

        fmt, path, _ = models.resolve(self.ctx.db, self.model_name)
        threads = free_cores()
        runtime = registry.runtime_for(fmt, self.config.backend)
        self.ctx.log(f"loading {self.model_name} ({fmt} on {runtime.name}, {threads} threads)")
        cfg = self.config
        chat = cfg.prompt_style == "chat"
        self.wrap = self.base_wrap
        options = GeneratorOptions(
            threads,
            cfg.context,
            cfg.device,
            cfg.batch_size,
            endpoint=cfg.endpoint,
            served_model=cfg.served_model,
            tensor_parallel=cfg.tensor_parallel_size,
            data_parallel=cfg.data_parallel_size,
            chat=chat,
        )
        if cfg.weights == "f16" and runtime.f16_copy:  # a stored "auto" predates the setting: the file
            from engine.backends.f16_copy import f16_copy

            path = f16_copy(path, threads, self.ctx.log)
        self.open_generator(ModelFile(self.model_name, fmt, path), options, self.config.backend)

    def open_generator(self, model: ModelFile, options: GeneratorOptions, backend: str) -> None:
        """The runtime for `model`: in this process, or spread over Ray workers with `--ray`."""
        from engine.backends import registry

        cfg = self.config
        if cfg.ray:
            from engine.backends.ray_pool import open_ray_generator

            self.generator = open_ray_generator(model, options, backend, cfg.ray, cfg.ray_workers)
            self.ctx.log(f"generating on {self.generator.size} Ray workers ({cfg.ray})")
        else:
            self.generator = registry.open_generator(model, options, backend)
        self.tally.workers = getattr(self.generator, "worker_rates", None)

    # ---- stage 1 ---------------------------------------------------------------------------

    def _sample(self, pool: list[Seed], k: int, rng: random.Random) -> list[Seed]:
        return self.prompts.sample(pool, k, rng)

    def dedup_text(self, instruction: str, input_text: str) -> str:
        """What near-duplicates are judged on: the instruction, with its passage when grounded."""
        return f"{instruction}\n{input_text}" if self.grounded else instruction

    def brainstorm(self) -> None:
        from engine.stages.brainstorm import brainstorm

        brainstorm(self)

    # ---- stage 2 (engine.stages.respond) ----------------------------------------------------

    def respond(self) -> None:
        from engine.stages.respond import respond

        respond(self)

    def _searcher(self):  # type: ignore[no-untyped-def]
        from engine.stages.corpus import Searcher

        self._searcher_check()
        return Searcher(self.ctx, self.embedder())

    # ---- the whole run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        gen = self.gen
        if gen.phase == "done":
            self.ctx.log(f"generation {gen.id} is already complete")
            return self.summary()
        cfg = self.config
        if cfg.retrieval:
            self._searcher_check()
        self._started = (time.monotonic(), store.count_examples(self.ctx.db, gen.id))
        self.ctx.log(f"target {gen.target}: {self._cost()}")
        try:
            phase: str = gen.phase
            while True:
                if phase == "brainstorm":
                    if cfg.tasks_from:
                        self._copy_tasks()
                    else:
                        self._use_base()
                        self.brainstorm()
                        store.set_phase(self.ctx.db, gen.id, "respond")
                if cfg.respond_with:
                    self._load_expert()
                elif self.generator is None:
                    self.load_model()
                self.respond()
                if not self._needs_more():
                    break
                store.set_phase(self.ctx.db, gen.id, "brainstorm")  # answers were dropped: more tasks
                phase = "brainstorm"
            store.set_phase(self.ctx.db, gen.id, "done")
        finally:
            if self.generator is not None:
                self.generator.close()
        return self.summary()

    def _use_base(self) -> None:
        """Brainstorming is always the base model's (a round-2 run may hold the expert)."""
        if self.generator is not None and getattr(self, "_expert_loaded", False):
            self.generator.close()
            self.generator = None
        if self.generator is None:
            self.load_model()
        self._expert_loaded = False

    def _needs_more(self) -> bool:
        """Answers dropped by the answer filters leave the target short: brainstorm that many more
        tasks (a pure function of stored counts, so a resumed run takes the same turns)."""
        made = store.count_examples(self.ctx.db, self.gen.id)
        short = self.gen.target - made
        if short <= 0 or self.config.tasks_from:
            return False
        if store.next_prompt_idx(self.ctx.db, self.gen.id) >= self.config.prompt_budget(self.gen.target):
            return False  # the prompt budget is spent; brainstorm() already said so
        self.ctx.log(f"{made} of {self.gen.target} examples after the answer filters: brainstorming {short} more tasks")
        return True

    def _copy_tasks(self) -> None:
        from engine.stages import round2

        round2.copy_tasks(self)

    def _load_expert(self) -> None:
        from engine.stages import round2

        round2.load_expert(self)

    def _runtime(self) -> str:
        from engine.backends import registry

        fmt, _, _ = models.resolve(self.ctx.db, self.model_name)
        return registry.runtime_for(fmt, self.config.backend).name

    def _cost(self) -> str:
        from engine.spec.generate import cost_text

        rate = store.measured_rate(self.ctx.db, self.model_name, self._runtime())
        return cost_text(rate, self.gen.target, store.count_examples(self.ctx.db, self.gen.id))

    def _searcher_check(self) -> None:
        if not projects.summary(self.ctx.db, self.project)["chunks"]:
            raise UserError(
                "retrieval is on but the project's corpus is empty: import documents "
                "(selfspec-tui corpus import) or generate with --no-retrieval"
            )

    def summary(self) -> dict[str, Any]:
        db, gid = self.ctx.db, self.gen.id
        totals = store.prompt_totals(db, gid)
        status = store.status_counts(db, gid)
        return {
            "generation": gid,
            "target": self.gen.target,
            "prompts": int(totals["prompts"]),
            "kept_tasks": status["kept"],
            "dropped_tasks": status["dropped"],
            "examples": store.count_examples(db, gid),
            "dropped_by_reason": store.drop_counts(db, gid),
            "tokens_per_s_this_run": self.tally.tokens_per_s() or 0,
            "brainstorm_tokens_per_kept_task": round(totals["tokens"] / status["kept"], 1) if status["kept"] else None,
            "prompt_tokens_saved_this_run": int(getattr(self.generator, "prefix_tokens_saved", 0) or 0),
            "model": self.model_name,
            "runtime": self._runtime(),
            **self._this_run(),
        }

    def _this_run(self) -> dict[str, Any]:
        """Examples made and seconds spent by this run: the rate the next cost estimate uses."""
        started = getattr(self, "_started", None)
        if started is None:
            return {}
        made = store.count_examples(self.ctx.db, self.gen.id) - started[1]
        return {"examples_this_run": made, "seconds_this_run": round(time.monotonic() - started[0], 2)}


def run_generation(ctx: Context, gen: Generation) -> dict[str, Any]:
    return GenerationRun(ctx, gen).run()
