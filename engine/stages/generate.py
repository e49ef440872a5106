"""Self-specialization data generation (Kang et al. 2023): brainstorm, filter, answer with retrieval.

Stage 1 walks prompt indices in order; each prompt's demonstrations and sampling seed derive from
(config seed, prompt index), and the prompt, its raw output and every candidate with its filter
decision are committed together. Stage 2 answers kept candidates in the order they were kept, one
committed batch at a time. A resumed generation rebuilds its dedup pool from the store and continues
at the first missing key, so it produces what an uninterrupted one would.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from engine.backends import chat_template
from engine.errors import UserError
from engine.events import Progress
from engine.spec import events as ev
from engine.spec.generate import GenerateConfig
from engine.spec.kinds import TaskStatus
from engine.stages import brainstorm_budget as budget_
from engine.stages import models
from engine.stages.brainstorm_prompts import BrainstormPrompts, Fitted
from engine.stages.context import Context, Interrupted
from engine.stages.filters import RougePool, SemanticPool, Verdict, check_task, normalized
from engine.stages.gen_setup import Tally, item_seed, open_generation, seed_pool
from engine.stages.task_parser import parse_tasks
from engine.stages.templates import (
    Wrap,
    brainstorm_stop,
    completion,
)
from engine.store import generation as store
from engine.store import projects, seeds
from engine.store.records import Candidate, Generation, Seed

__all__ = ["GenerationRun", "item_seed", "open_generation", "run_generation"]


MIN_WRITTEN = 3
"""words a grounded task's instruction needs beyond the seed lead-in it was started with"""


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
        self.generator = registry.open_generator(ModelFile(self.model_name, fmt, path), options, self.config.backend)

    # ---- stage 1 ---------------------------------------------------------------------------

    def _fit_brainstorm(self, idx: int, kept: list[Candidate]) -> Fitted | None:
        return self.prompts.fit(idx, kept)

    def _sample(self, pool: list[Seed], k: int, rng: random.Random) -> list[Seed]:
        return self.prompts.sample(pool, k, rng)

    def dedup_text(self, instruction: str, input_text: str) -> str:
        """What near-duplicates are judged on: the instruction, with its passage when grounded."""
        return f"{instruction}\n{input_text}" if self.grounded else instruction

    def _pools(self, kept: list[Candidate]) -> tuple[RougePool, SemanticPool | None]:
        ctx, gen = self.ctx, self.gen
        pool = RougePool()
        semantic = SemanticPool(self.embedder()) if self.config.filters.semantic_threshold > 0 else None
        taken = [(self.dedup_text(s.instruction, s.input), f"seed #{s.id}") for s in self.seeds]
        # a task too close to a reserved seed would leak it
        taken += [
            (self.dedup_text(s.instruction, s.input), f"held-out seed #{s.id}")
            for s in seeds.held_out(ctx.db, self.project)
        ]
        taken += [(text, "an earlier example") for text in store.other_instructions(ctx.db, self.project, gen.id)]
        taken += [(self.dedup_text(c.instruction, c.input), f"task {c.prompt_idx}.{c.item_idx}") for c in kept]
        for text, label in taken:
            pool.add(text, label)
            if semantic is not None:
                semantic.add(text, label)
        return pool, semantic

    def brainstorm(self) -> None:
        from engine.backends.types import Sampling

        ctx, gen, cfg = self.ctx, self.gen, self.config
        kept = store.candidates(ctx.db, gen.id, "kept")
        pools = self._pools(kept)
        idx = store.next_prompt_idx(ctx.db, gen.id)
        self.tally.kept = len(kept)
        self.tally.dropped = Counter(store.drop_counts(ctx.db, gen.id))  # again each round: no double count
        self.tally.prompts = idx
        budget = cfg.prompt_budget(gen.target)
        asked = budget_.per_prompt(cfg, self.grounded)
        self.limit, self.per_task = budget_.plan_tokens(cfg, self.seeds, self.generator.count_tokens, self.grounded)
        if cfg.size_from_seeds:
            ctx.log(f"brainstorm limit {self.limit} tokens per prompt (a task takes about {self.per_task})")
        progress = ctx.progress("brainstorm", gen.target, "tasks kept", done=min(len(kept), gen.target))
        while len(kept) < gen.target and idx < budget:
            ctx.check_stop()
            size = budget_.call_size(cfg, self.generator.batch_size, gen.target, idx, len(kept), asked)
            batch = list(range(idx, min(idx + size, budget)))
            fitted = {i: self._fit_brainstorm(i, kept) for i in batch}
            runnable = [i for i in batch if fitted[i] is not None]
            t0 = time.monotonic()
            completions = {}
            if runnable:
                n_demos = fitted[runnable[0]].n_demos  # type: ignore[union-attr]
                sampling = Sampling(
                    cfg.brainstorm.temperature,
                    cfg.brainstorm.top_p,
                    self.limit,
                    brainstorm_stop(n_demos, asked),
                )
                # the prefixes differ only in a one-line passage, so one watch reads every completion
                first = fitted[runnable[0]].prefix  # type: ignore[union-attr]
                outs = self.generator.generate(
                    [fitted[i].prompt for i in runnable],  # type: ignore[union-attr]
                    sampling,
                    [item_seed(cfg.seed, "brainstorm", i) for i in runnable],
                    ctx.should_stop,
                    self._watch(first, asked),
                )
                if len(outs) < len(runnable) or any(o.finish == "cancelled" for o in outs):
                    raise Interrupted()
                completions = dict(zip(runnable, outs))
            elapsed = time.monotonic() - t0
            records = []
            for i in batch:
                drafts, record = self._judge(i, fitted[i], completions.get(i), elapsed / len(batch), pools, kept)
                records.append((record, drafts))
            store.save_prompts(ctx.db, gen.id, records)
            self._report(progress, records, kept)
            idx += len(batch)
        if len(kept) < gen.target:
            ctx.log(
                f"brainstorming stopped after {idx} prompts with {len(kept)} of {gen.target} tasks kept "
                "(raise --max-prompts, or look at the drop reasons)",
                "warning",
            )

    def _watch(self, prefix: str, asked: int) -> Any:
        if self.grounded:
            return budget_.grounded_watch
        return budget_.watch(prefix, asked, self.limit, self.per_task) if self.config.size_from_seeds else None

    def _judge(self, idx, fitted, completion, seconds, pools, kept):  # type: ignore[no-untyped-def]
        from engine.store.generation import CandidateDraft, PromptRecord

        if fitted is None:
            record = PromptRecord(idx, [], [], "", "skipped", 0, 0, 0.0)
            return [CandidateDraft(0, "", "", "", "dropped", "prompt_too_long", "no demonstration fits")], record
        record = PromptRecord(
            idx,
            fitted.seed_ids,
            fitted.mixed_ids,
            completion.text,
            completion.finish,
            completion.prompt_tokens,
            completion.tokens,
            round(seconds, 4),
            fitted.passage_id,
        )
        tasks = parse_tasks(fitted.prefix + completion.text, truncated=completion.finish == "length")
        drafts = []
        for j, t in enumerate(tasks):
            verdict, vector = self._verdict(t, pools, kept, fitted.prefix)
            status = "kept" if verdict.kept else "dropped"
            drafts.append(
                CandidateDraft(j, t.instruction, t.input, t.task_type, status, verdict.reason, verdict.detail)
            )
            if verdict.kept:
                text, label = self.dedup_text(t.instruction, t.input), f"task {idx}.{j}"
                pools[0].add(text, label)
                if pools[1] is not None:
                    pools[1].add(text, label, vector)
                kept.append(_candidate_stub(self.gen.id, idx, j, t.instruction, t.input, t.task_type))
        return drafts, record

    def _verdict(
        self, t: Any, pools: tuple[RougePool, SemanticPool | None], kept: list[Candidate], prefix: str
    ) -> tuple[Verdict, Any]:
        """The filters in order: parse problems, target, heuristics, ROUGE-L, then embedding cosine."""
        filters = self.config.filters
        if t.problem:
            return Verdict(t.problem, t.detail), None
        if len(kept) >= self.gen.target:
            return Verdict("target_reached", "the generation already has its target"), None
        lead = prefix.split("Instruction:", 1)[1].strip() if self.grounded and "Instruction:" in prefix else ""
        written = t.instruction[len(lead) :] if lead and t.instruction.startswith(lead) else t.instruction
        if len(written.split()) < MIN_WRITTEN:  # the lead-in came from a seed: the model must add to it
            return Verdict("too_short", f"the model wrote {len(written.split())} word(s) after the lead-in"), None
        verdict = check_task(t.instruction, t.input, filters, self.seed_norms)
        if not verdict.kept:
            return verdict, None
        text = self.dedup_text(t.instruction, t.input)
        score, match = pools[0].best(text, filters.rouge_threshold)
        if score > filters.rouge_threshold:
            return Verdict("near_duplicate", f"ROUGE-L {score:.2f} with {match}"), None
        if pools[1] is None:
            return verdict, None
        cosine, match, vector = pools[1].best(text)
        if cosine > filters.semantic_threshold:
            return Verdict("semantic_duplicate", f"embedding cosine {cosine:.2f} with {match}"), None
        return verdict, vector

    def _report(self, progress: Progress, records: list, kept: list[Candidate]) -> None:  # type: ignore[type-arg]
        t = self.tally
        for record, drafts in records:
            t.prompts += 1
            t.tokens += record.tokens
            t.brainstorm_tokens += record.tokens
            t.seconds += record.seconds
            for d in drafts:
                t.parsed += 1 if d.instruction else 0
                if d.status == "dropped":
                    t.dropped[d.reason] += 1
                self.ctx.emit(
                    ev.Item(
                        "task",
                        {
                            "status": d.status,
                            "reason": d.reason,
                            "detail": d.detail,
                            "instruction": d.instruction,
                            "input": d.input,
                            "task_type": d.task_type,
                        },
                    )
                )
        new = len(kept) - t.kept
        t.kept = len(kept)
        t.kept_this_run += new
        t.attach(progress)
        progress.advance(max(0, min(new, self.gen.target - progress.done)), force=True)

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
            phase = gen.phase
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


def _candidate_stub(gid: int, idx: int, j: int, instruction: str, input_text: str, task_type: str) -> Candidate:
    return Candidate(0, gid, idx, j, instruction, input_text, task_type, TaskStatus.KEPT, "", "")


def run_generation(ctx: Context, gen: Generation) -> dict[str, Any]:
    return GenerationRun(ctx, gen).run()
