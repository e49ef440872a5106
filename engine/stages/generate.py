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

from engine.errors import UserError
from engine.events import Progress
from engine.spec import events as ev
from engine.spec.generate import GenerateConfig
from engine.spec.kinds import TaskStatus
from engine.stages import brainstorm_budget as budget_
from engine.stages import models
from engine.stages.context import Context, Interrupted
from engine.stages.filters import RougePool, Verdict, check_response, check_task, normalized
from engine.stages.gen_setup import Tally, item_seed, open_generation, seed_pool
from engine.stages.task_parser import parse_tasks
from engine.stages.templates import (
    RESPONSE_STOP,
    Demo,
    Passage,
    brainstorm_prefix,
    brainstorm_prompt,
    brainstorm_stop,
    requirements,
    response_prompt,
)
from engine.store import generation as store
from engine.store import projects, seeds
from engine.store.records import Candidate, Generation

__all__ = ["GenerationRun", "item_seed", "open_generation", "run_generation"]


class GenerationRun:
    """One generation being run: config, seeds, model and the dedup pool."""

    def __init__(self, ctx: Context, gen: Generation) -> None:
        self.ctx, self.gen = ctx, gen
        self.project = ctx.need_project()
        self.config = GenerateConfig.model_validate(gen.config["generate"])
        self.model_name = gen.config["model"]
        self.seeds = seed_pool(ctx, self.config.seed_set)
        self.seed_norms = {normalized(s.instruction) for s in self.seeds}
        self.tally = Tally()
        self.generator: Any = None
        self.limit, self.per_task = (
            self.config.brainstorm.max_tokens,
            0,
        )  # set from the seeds by brainstorm_budget.plan_tokens
        self.searcher: Any = None  # loaded on first need (embedder + index)

    def load_model(self) -> None:
        from engine.backends import registry
        from engine.backends.types import GeneratorOptions, ModelFile
        from engine.cpu import free_cores

        fmt, path, _ = models.resolve(self.ctx.db, self.model_name)
        threads = free_cores()
        runtime = registry.runtime_for(fmt, self.config.backend)
        self.ctx.log(f"loading {self.model_name} ({fmt} on {runtime.name}, {threads} threads)")
        cfg = self.config
        options = GeneratorOptions(
            threads,
            cfg.context,
            cfg.device,
            cfg.batch_size,
            endpoint=cfg.endpoint,
            served_model=cfg.served_model,
            tensor_parallel=cfg.tensor_parallel_size,
            data_parallel=cfg.data_parallel_size,
        )
        self.generator = registry.open_generator(ModelFile(self.model_name, fmt, path), options, self.config.backend)

    # ---- stage 1 ---------------------------------------------------------------------------

    def _demos(self, idx: int, kept: list[Candidate], k: int) -> tuple[list[Demo], list[int], list[list[int]]]:
        rng = random.Random(item_seed(self.config.seed, "demos", idx))
        n_gen = min(self.config.k_generated, len(kept), k - 1)
        picked_seeds = rng.sample(self.seeds, min(k - n_gen, len(self.seeds)))
        picked_gen = rng.sample(kept, n_gen) if n_gen else []
        demos = [Demo(s.instruction, s.input, s.output, s.task_type) for s in picked_seeds]
        demos += [Demo(c.instruction, c.input, "", c.task_type) for c in picked_gen]
        rng.shuffle(demos)
        return demos, [s.id for s in picked_seeds], [[c.prompt_idx, c.item_idx] for c in picked_gen]

    def _fit_brainstorm(self, idx: int, kept: list[Candidate]) -> tuple[str, int, list[int], list[list[int]]] | None:
        reqs = requirements(self.project.domain, self._task_types(), self.config.topics)
        for k in range(self.config.k_seeds, 0, -1):
            demos, seed_ids, mixed_ids = self._demos(idx, kept, k)
            prompt = brainstorm_prompt(self.project.domain, demos, reqs)
            if self.generator.count_tokens(prompt) + self.limit <= self.generator.context_length:
                return prompt, len(demos), seed_ids, mixed_ids
        return None

    def _task_types(self) -> list[str]:
        counts = Counter(s.task_type for s in self.seeds if s.task_type)
        return [t for t, _ in counts.most_common()]

    def brainstorm(self) -> None:
        from engine.backends.types import Sampling

        ctx, gen, cfg = self.ctx, self.gen, self.config
        pool = RougePool()
        for s in self.seeds:
            pool.add(s.instruction, f"seed #{s.id}")
        for s in seeds.held_out(ctx.db, self.project):  # a task too close to a reserved one would leak it
            pool.add(s.instruction, f"held-out seed #{s.id}")
        for text in store.other_instructions(ctx.db, self.project, gen.id):
            pool.add(text, "an earlier example")
        kept = store.candidates(ctx.db, gen.id, "kept")
        for c in kept:
            pool.add(c.instruction, f"task {c.prompt_idx}.{c.item_idx}")
        idx = store.next_prompt_idx(ctx.db, gen.id)
        self.tally.kept = len(kept)
        self.tally.dropped.update(store.drop_counts(ctx.db, gen.id))
        self.tally.prompts = idx
        budget = cfg.prompt_budget(gen.target)
        self.limit, self.per_task = budget_.plan_tokens(cfg, self.seeds, self.generator.count_tokens)
        if cfg.size_from_seeds:
            ctx.log(f"brainstorm limit {self.limit} tokens per prompt (a task takes about {self.per_task})")
        progress = ctx.progress("brainstorm", gen.target, "tasks kept", done=min(len(kept), gen.target))
        while len(kept) < gen.target and idx < budget:
            ctx.check_stop()
            size = budget_.call_size(cfg, self.generator.batch_size, gen.target, idx, len(kept))
            batch = list(range(idx, min(idx + size, budget)))
            fitted = {i: self._fit_brainstorm(i, kept) for i in batch}
            runnable = [i for i in batch if fitted[i] is not None]
            t0 = time.monotonic()
            completions = {}
            if runnable:
                n_demos = fitted[runnable[0]][1]  # type: ignore[index]
                sampling = Sampling(
                    cfg.brainstorm.temperature,
                    cfg.brainstorm.top_p,
                    self.limit,
                    brainstorm_stop(n_demos, cfg.tasks_per_prompt),
                )
                outs = self.generator.generate(
                    [fitted[i][0] for i in runnable],  # type: ignore[index]
                    sampling,
                    [item_seed(cfg.seed, "brainstorm", i) for i in runnable],
                    ctx.should_stop,
                    budget_.watch(n_demos, cfg.tasks_per_prompt, self.limit, self.per_task)
                    if cfg.size_from_seeds
                    else None,
                )
                if len(outs) < len(runnable) or any(o.finish == "cancelled" for o in outs):
                    raise Interrupted()
                completions = dict(zip(runnable, outs))
            elapsed = time.monotonic() - t0
            records = []
            for i in batch:
                drafts, record = self._judge(i, fitted[i], completions.get(i), elapsed / len(batch), pool, kept)
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

    def _judge(self, idx, fitted, completion, seconds, pool, kept):  # type: ignore[no-untyped-def]
        from engine.store.generation import CandidateDraft, PromptRecord

        if fitted is None:
            record = PromptRecord(idx, [], [], "", "skipped", 0, 0, 0.0)
            return [CandidateDraft(0, "", "", "", "dropped", "prompt_too_long", "no demonstration fits")], record
        _, n_demos, seed_ids, mixed_ids = fitted
        record = PromptRecord(
            idx,
            seed_ids,
            mixed_ids,
            completion.text,
            completion.finish,
            completion.prompt_tokens,
            completion.tokens,
            round(seconds, 4),
        )
        tasks = parse_tasks(brainstorm_prefix(n_demos) + completion.text, truncated=completion.finish == "length")
        drafts = []
        for j, t in enumerate(tasks):
            if t.problem:
                verdict = Verdict(t.problem, t.detail)
            elif len(kept) >= self.gen.target:
                verdict = Verdict("target_reached", "the generation already has its target")
            else:
                verdict = check_task(t.instruction, t.input, self.config.filters, self.seed_norms)
                if verdict.kept:
                    score, match = pool.best(t.instruction, self.config.filters.rouge_threshold)
                    if score > self.config.filters.rouge_threshold:
                        verdict = Verdict("near_duplicate", f"ROUGE-L {score:.2f} with {match}")
            status = "kept" if verdict.kept else "dropped"
            drafts.append(
                CandidateDraft(j, t.instruction, t.input, t.task_type, status, verdict.reason, verdict.detail)
            )
            if verdict.kept:
                pool.add(t.instruction, f"task {idx}.{j}")
                kept.append(_candidate_stub(self.gen.id, idx, j, t.instruction, t.input, t.task_type))
        return drafts, record

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

    # ---- stage 2 ---------------------------------------------------------------------------

    def respond(self) -> None:
        from engine.backends.types import Sampling

        ctx, gen, cfg = self.ctx, self.gen, self.config
        ordered = store.stage2_candidates(ctx.db, gen.id)
        todo_ids = {c.id for c in store.awaiting_response(ctx.db, gen.id)}
        if cfg.retrieval and todo_ids and self.searcher is None:
            self.searcher = self._searcher()
        searcher = self.searcher
        origins = store.prompt_origins(ctx.db, gen.id)
        sampling = Sampling(cfg.respond.temperature, cfg.respond.top_p, cfg.respond.max_tokens, RESPONSE_STOP)
        done = len(ordered) - len(todo_ids)
        self.tally.responses = store.count_examples(ctx.db, gen.id)
        progress = ctx.progress("respond", len(ordered), "responses", done=done)
        size = cfg.demo_block if cfg.demo_block > 1 else self.generator.batch_size  # one call per block
        for start in range(0, len(ordered), size):
            batch = [c for c in ordered[start : start + size] if c.id in todo_ids]
            if not batch:
                continue
            ctx.check_stop()
            at = {c.id: start + k for k, c in enumerate(ordered[start : start + size])}
            prepared = [self._response_prompt(c, searcher, at[c.id]) for c in batch]
            runnable = [(c, p) for c, p in zip(batch, prepared) if p is not None]
            t0 = time.monotonic()
            outs = []
            if runnable:
                outs = self.generator.generate(
                    [p[0] for _, p in runnable],  # type: ignore[index]
                    sampling,
                    [item_seed(cfg.seed, "respond", c.prompt_idx, c.item_idx) for c, _ in runnable],
                    ctx.should_stop,
                )
                if len(outs) < len(runnable) or any(o.finish == "cancelled" for o in outs):
                    raise Interrupted()
            self.tally.seconds += time.monotonic() - t0
            made, dropped = [], []
            for c in batch:
                if not any(c is r for r, _ in runnable):
                    dropped.append((c.id, "prompt_too_long", "the task does not fit the model's context"))
            for (c, p), out in zip(runnable, outs):
                self.tally.tokens += out.tokens
                verdict = check_response(out.text)
                if not verdict.kept:
                    dropped.append((c.id, verdict.reason, verdict.detail))
                    continue
                made.append(self._example(c, out, p, origins, at[c.id]))  # type: ignore[arg-type]
            store.save_responses(ctx.db, self.project, gen.id, made, dropped)
            for _cid, reason, _ in dropped:
                self.tally.dropped[reason] += 1
            self.tally.responses += len(made)
            for m in made:
                ctx.emit(
                    ev.Item(
                        "example",
                        {
                            "instruction": m.candidate.instruction,
                            "input": m.candidate.input,
                            "output": m.output,
                            "flag": m.flag,
                            "passages": len(m.passages),
                        },
                    )
                )
            self.tally.attach(progress)
            progress.advance(len(batch), force=True)

    def _searcher(self):  # type: ignore[no-untyped-def]
        from engine.stages.corpus import Searcher

        self._searcher_check()
        return Searcher(self.ctx)

    def _response_prompt(
        self, c: Candidate, searcher: Any, position: int
    ) -> tuple[str, list[int], list[dict[str, Any]]] | None:
        """The answer prompt: one demonstration set per block of `demo_block` tasks (in stage-2 order),
        so a batch's prompts share their head and demonstrations, evaluated once."""
        cfg = self.config
        if cfg.demo_block > 1:
            rng = random.Random(item_seed(cfg.seed, "respond-demos-block", position // cfg.demo_block))
        else:
            rng = random.Random(item_seed(cfg.seed, "respond-demos", c.prompt_idx, c.item_idx))
        shots = rng.sample(self.seeds, min(cfg.demos, len(self.seeds)))
        hits = searcher.search(f"{c.instruction}\n{c.input}".strip(), cfg.passages) if searcher else []
        task = Demo(c.instruction, c.input, "", c.task_type)
        while True:
            demos = [Demo(s.instruction, s.input, s.output, s.task_type) for s in shots]
            passages = [Passage(h.chunk.source.rsplit("/", 1)[-1], h.chunk.text) for h in hits]
            prompt = response_prompt(self.project.domain, demos, passages, task)
            if self.generator.count_tokens(prompt) + cfg.respond.max_tokens <= self.generator.context_length:
                used = [{"chunk_id": h.chunk.id, "score": round(h.score, 4), "source": h.chunk.source} for h in hits]
                return prompt, [s.id for s in shots], used
            if shots:
                shots = shots[:-1]
            elif hits:
                hits = hits[:-1]
            else:
                return None

    def _example(self, c: Candidate, out: Any, prepared: tuple, origins: dict, position: int) -> Any:  # type: ignore[type-arg]
        from engine.store.generation import ExampleDraft

        cfg = self.config
        _, demo_ids, passages = prepared
        seed_ids, mixed_ids = origins.get(c.prompt_idx, ([], []))
        provenance = {
            "template": cfg.template,
            "generation": self.gen.id,
            "model": self.model_name,
            "prompt": [c.prompt_idx, c.item_idx],
            "brainstorm_seed_ids": seed_ids,
            "brainstorm_mixed_ids": mixed_ids,
            "response_demo_ids": demo_ids,
            "response_demo_block": position // cfg.demo_block if cfg.demo_block > 1 else None,
            "brainstorm_sampling": cfg.brainstorm.model_dump(),
            "response_sampling": cfg.respond.model_dump(),
            "retrieval": cfg.retrieval,
            "seed": cfg.seed,
        }
        flag = "response hit the token limit" if out.finish == "length" else ""
        return ExampleDraft(c, out.text.strip(), flag, provenance, passages)

    # ---- the whole run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        gen = self.gen
        if gen.phase == "done":
            self.ctx.log(f"generation {gen.id} is already complete")
            return self.summary()
        if self.config.retrieval:
            self._searcher_check()
        self._started = (time.monotonic(), store.count_examples(self.ctx.db, gen.id))
        self.ctx.log(f"target {gen.target}: {self._cost()}")
        if self.generator is None:
            self.load_model()
        try:
            if gen.phase == "brainstorm":
                self.brainstorm()
                store.set_phase(self.ctx.db, gen.id, "respond")
            self.respond()
            store.set_phase(self.ctx.db, gen.id, "done")
        finally:
            self.generator.close()
        return self.summary()

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
