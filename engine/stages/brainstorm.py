"""Stage 1 of a generation: brainstorm new tasks from the seeds, filter them, keep the good ones.

Prompt indices are walked in order; each prompt's demonstrations and sampling seed derive from
(config seed, prompt index), and the prompt, its raw output and every candidate with its filter
decision are committed together. A resumed run rebuilds its dedup pools from the store and goes on
at the first missing index, so it keeps what an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from engine.events import Progress
from engine.spec import events as ev
from engine.spec.kinds import TaskStatus
from engine.stages import brainstorm_budget as budget_
from engine.stages.context import Interrupted
from engine.stages.filters import RougePool, SemanticPool, Verdict, check_task
from engine.stages.gen_setup import item_seed
from engine.stages.task_parser import parse_tasks
from engine.stages.templates import brainstorm_stop
from engine.store import generation as store
from engine.store import seeds
from engine.store.records import Candidate

MIN_WRITTEN = 3
"""words a grounded task's instruction needs beyond the seed lead-in it was started with"""


def _pools(run: Any, kept: list[Candidate]) -> tuple[RougePool, SemanticPool | None]:
    ctx, gen = run.ctx, run.gen
    pool = RougePool()
    semantic = SemanticPool(run.embedder()) if run.config.filters.semantic_threshold > 0 else None
    taken = [(run.dedup_text(s.instruction, s.input), f"seed #{s.id}") for s in run.seeds]
    # a task too close to a reserved seed would leak it
    taken += [
        (run.dedup_text(s.instruction, s.input), f"held-out seed #{s.id}") for s in seeds.held_out(ctx.db, run.project)
    ]
    taken += [(text, "an earlier example") for text in store.other_instructions(ctx.db, run.project, gen.id)]
    taken += [(run.dedup_text(c.instruction, c.input), f"task {c.prompt_idx}.{c.item_idx}") for c in kept]
    for text, label in taken:
        pool.add(text, label)
        if semantic is not None:
            semantic.add(text, label)
    return pool, semantic


def brainstorm(run: Any) -> None:
    from engine.backends.types import Sampling

    ctx, gen, cfg = run.ctx, run.gen, run.config
    kept = store.candidates(ctx.db, gen.id, "kept")
    pools = _pools(run, kept)
    idx = store.next_prompt_idx(ctx.db, gen.id)
    run.tally.kept = len(kept)
    run.tally.dropped = Counter(store.drop_counts(ctx.db, gen.id))  # again each round: no double count
    run.tally.prompts = idx
    budget = cfg.prompt_budget(gen.target)
    asked = budget_.per_prompt(cfg, run.grounded)
    run.limit, run.per_task = budget_.plan_tokens(cfg, run.seeds, run.generator.count_tokens, run.grounded)
    if cfg.size_from_seeds:
        ctx.log(f"brainstorm limit {run.limit} tokens per prompt (a task takes about {run.per_task})")
    progress = ctx.progress("brainstorm", gen.target, "tasks kept", done=min(len(kept), gen.target))
    while len(kept) < gen.target and idx < budget:
        ctx.check_stop()
        size = budget_.call_size(cfg, run.generator.batch_size, gen.target, idx, len(kept), asked)
        batch = list(range(idx, min(idx + size, budget)))
        fitted = {i: run.prompts.fit(i, kept) for i in batch}
        runnable = [i for i in batch if fitted[i] is not None]
        t0 = time.monotonic()
        completions = {}
        if runnable:
            n_demos = fitted[runnable[0]].n_demos  # type: ignore[union-attr]
            sampling = Sampling(
                cfg.brainstorm.temperature,
                cfg.brainstorm.top_p,
                run.limit,
                brainstorm_stop(n_demos, asked),
            )
            # the prefixes differ only in a one-line passage, so one watch reads every completion
            first = fitted[runnable[0]].prefix  # type: ignore[union-attr]
            outs = run.generator.generate(
                [fitted[i].prompt for i in runnable],  # type: ignore[union-attr]
                sampling,
                [item_seed(cfg.seed, "brainstorm", i) for i in runnable],
                ctx.should_stop,
                _watch(run, first, asked),
            )
            if len(outs) < len(runnable) or any(o.finish == "cancelled" for o in outs):
                raise Interrupted()
            completions = dict(zip(runnable, outs))
        elapsed = time.monotonic() - t0
        records = []
        for i in batch:
            drafts, record = _judge(run, i, fitted[i], completions.get(i), elapsed / len(batch), pools, kept)
            records.append((record, drafts))
        store.save_prompts(ctx.db, gen.id, records)
        _report(run, progress, records, kept)
        idx += len(batch)
    if len(kept) < gen.target:
        ctx.log(
            f"brainstorming stopped after {idx} prompts with {len(kept)} of {gen.target} tasks kept "
            "(raise --max-prompts, or look at the drop reasons)",
            "warning",
        )


def _watch(run: Any, prefix: str, asked: int) -> Any:
    if run.grounded:
        return budget_.grounded_watch
    return budget_.watch(prefix, asked, run.limit, run.per_task) if run.config.size_from_seeds else None


def _judge(run, idx, fitted, completion, seconds, pools, kept):  # type: ignore[no-untyped-def]
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
        verdict, vector = _verdict(run, t, pools, kept, fitted.prefix)
        status = "kept" if verdict.kept else "dropped"
        drafts.append(CandidateDraft(j, t.instruction, t.input, t.task_type, status, verdict.reason, verdict.detail))
        if verdict.kept:
            text, label = run.dedup_text(t.instruction, t.input), f"task {idx}.{j}"
            pools[0].add(text, label)
            if pools[1] is not None:
                pools[1].add(text, label, vector)
            kept.append(_candidate_stub(run.gen.id, idx, j, t.instruction, t.input, t.task_type))
    return drafts, record


def _verdict(
    run: Any, t: Any, pools: tuple[RougePool, SemanticPool | None], kept: list[Candidate], prefix: str
) -> tuple[Verdict, Any]:
    """The filters in order: parse problems, target, heuristics, ROUGE-L, then embedding cosine."""
    filters = run.config.filters
    if t.problem:
        return Verdict(t.problem, t.detail), None
    if len(kept) >= run.gen.target:
        return Verdict("target_reached", "the generation already has its target"), None
    lead = prefix.split("Instruction:", 1)[1].strip() if run.grounded and "Instruction:" in prefix else ""
    written = t.instruction[len(lead) :] if lead and t.instruction.startswith(lead) else t.instruction
    if len(written.split()) < MIN_WRITTEN:  # the lead-in came from a seed: the model must add to it
        return Verdict("too_short", f"the model wrote {len(written.split())} word(s) after the lead-in"), None
    verdict = check_task(t.instruction, t.input, filters, run.seed_norms)
    if not verdict.kept:
        return verdict, None
    text = run.dedup_text(t.instruction, t.input)
    score, match = pools[0].best(text, filters.rouge_threshold)
    if score > filters.rouge_threshold:
        return Verdict("near_duplicate", f"ROUGE-L {score:.2f} with {match}"), None
    if pools[1] is None:
        return verdict, None
    cosine, match, vector = pools[1].best(text)
    if cosine > filters.semantic_threshold:
        return Verdict("semantic_duplicate", f"embedding cosine {cosine:.2f} with {match}"), None
    return verdict, vector


def _report(run: Any, progress: Progress, records: list, kept: list[Candidate]) -> None:  # type: ignore[type-arg]
    t = run.tally
    for record, drafts in records:
        t.prompts += 1
        t.tokens += record.tokens
        t.brainstorm_tokens += record.tokens
        t.seconds += record.seconds
        for d in drafts:
            t.parsed += 1 if d.instruction else 0
            if d.status == "dropped":
                t.dropped[d.reason] += 1
            run.ctx.emit(
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
    progress.advance(max(0, min(new, run.gen.target - progress.done)), force=True)


def _candidate_stub(gid: int, idx: int, j: int, instruction: str, input_text: str, task_type: str) -> Candidate:
    return Candidate(0, gid, idx, j, instruction, input_text, task_type, TaskStatus.KEPT, "", "")
