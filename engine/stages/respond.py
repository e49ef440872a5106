"""Stage 2 of a generation: answer the kept tasks with retrieved passages, then check the answers.

Kept tasks are answered in the order they were kept, one call per block of `demo_block` tasks (one
set of demonstrations per block, so a call's prompts share their head), and each call is committed
whole. An answer is dropped, with a reason, when it is empty or not text, loops or repeats itself (it is
ended as soon as it does: filters.doomed_watch),
is not about its task (embedding cosine), or the model's own grade of it is low (self-judging).
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from engine.spec import events as ev
from engine.stages import judge as judge_
from engine.stages.context import Interrupted
from engine.stages.filters import Verdict, check_on_task, check_response, doomed_watch
from engine.stages.gen_setup import item_seed
from engine.stages.label_answers import LabelAnswers
from engine.stages.passages import Shown, consolidate
from engine.stages.templates import RESPONSE_STOP, Demo, Passage, response_prompt
from engine.store import generation as store
from engine.store.records import Candidate


def respond(run: Any) -> None:
    from engine.backends.types import Sampling

    ctx, gen, cfg = run.ctx, run.gen, run.config
    ordered = store.stage2_candidates(ctx.db, gen.id)
    todo_ids = {c.id for c in store.awaiting_response(ctx.db, gen.id)}
    if cfg.retrieval and todo_ids and run.searcher is None:
        run.searcher = run._searcher()
    origins = store.prompt_origins(ctx.db, gen.id)
    sampling = Sampling(cfg.respond.temperature, cfg.respond.top_p, cfg.respond.max_tokens, RESPONSE_STOP)
    done = len(ordered) - len(todo_ids)
    run.tally.responses = store.count_examples(ctx.db, gen.id)
    grader = judge_.Grader(run) if cfg.judge and todo_ids else None
    labeler = LabelAnswers(run) if cfg.label_answers and todo_ids else None
    if labeler is not None:
        labeler.calibrate()
    progress = ctx.progress("respond", len(ordered), "responses", done=done)
    size = cfg.demo_block if cfg.demo_block > 1 else run.generator.batch_size  # one call per block
    for start in range(0, len(ordered), size):
        batch = [c for c in ordered[start : start + size] if c.id in todo_ids]
        if not batch:
            continue
        ctx.check_stop()
        at = {c.id: start + k for k, c in enumerate(ordered[start : start + size])}
        prepared = [response_prompt_for(run, c, at[c.id]) for c in batch]
        runnable = [(c, p) for c, p in zip(batch, prepared) if p is not None]
        t0 = time.monotonic()
        outs = _answers(run, runnable, sampling, labeler)
        dropped = [
            (c.id, "prompt_too_long", "the task does not fit the model's context")
            for c in batch
            if not any(c is r for r, _ in runnable)
        ]
        passed = []
        for (c, p), out in zip(runnable, outs):
            run.tally.tokens += out.tokens
            verdict = check_answer(run, c, out.text)
            if verdict.kept:
                passed.append((c, p, out))
            else:
                dropped.append((c.id, verdict.reason, verdict.detail))
        grades = grader.grade([(c, out.text) for c, _, out in passed]) if grader else [None] * len(passed)
        made = []
        for (c, p, out), grade in zip(passed, grades):
            if grade is not None and grade < cfg.judge_threshold:
                dropped.append((c.id, "low_grade", f"expected grade {grade:.2f} (minimum {cfg.judge_threshold})"))
                continue
            made.append(_example(run, c, out, p, origins, at[c.id], grade))
        run.tally.seconds += time.monotonic() - t0
        store.save_responses(ctx.db, run.project, gen.id, made, dropped)
        for _cid, reason, _ in dropped:
            run.tally.dropped[reason] += 1
        run.tally.responses += len(made)
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
        run.tally.attach(progress)
        progress.advance(len(batch), force=True)


def _answers(run: Any, runnable: list, sampling: Any, labeler: LabelAnswers | None) -> list[Any]:  # type: ignore[type-arg]
    """One completion per runnable task: a label for label-type tasks, generated text for the rest."""
    from engine.backends.types import Completion

    ctx, cfg = run.ctx, run.config
    by_label = [i for i, (c, _) in enumerate(runnable) if labeler is not None and labeler.labels_for(c.task_type)]
    free = [i for i in range(len(runnable)) if i not in set(by_label)]
    outs: list[Any] = [None] * len(runnable)
    if free:
        done = run.generator.generate(
            [runnable[i][1][0] for i in free],
            sampling,
            [item_seed(cfg.seed, "respond", runnable[i][0].prompt_idx, runnable[i][0].item_idx) for i in free],
            ctx.should_stop,
            doomed_watch(cfg.filters) if cfg.stop_doomed else None,
        )
        if len(done) < len(free) or any(o.finish == "cancelled" for o in done):
            raise Interrupted()
        for i, o in zip(free, done):
            outs[i] = o
    if by_label:
        ctx.check_stop()
        kinds = [runnable[i][0].task_type or "general" for i in by_label]
        chosen = labeler.answer([runnable[i][1][0] for i in by_label], kinds)  # type: ignore[union-attr]
        for i, (label, lps) in zip(by_label, chosen):
            outs[i] = Completion(label, "stop", 0, 1)
            run.label_scores[runnable[i][0].id] = lps
    return outs


def check_answer(run: Any, c: Candidate, text: str) -> Verdict:
    """Text checks (empty, non-text, repetition, loops), then whether it is about its task."""
    filters = run.config.filters
    verdict = check_response(text, filters)
    if not verdict.kept or filters.min_answer_similarity <= -1:
        return verdict
    embed = run.embedder().embed
    task = f"{c.instruction}\n{c.input}".strip()
    similarity = float(np.dot(embed([text.strip()])[0], embed([task])[0]))  # one text per call: exact on resume
    return check_on_task(similarity, text, filters)


def response_prompt_for(run: Any, c: Candidate, position: int) -> tuple[str, list[int], list[dict[str, Any]]] | None:
    """The answer prompt: one demonstration set per block of `demo_block` tasks (in stage-2 order),
    so a batch's prompts share their head and demonstrations, evaluated once; passages under the
    relevance floor are left out, and the rest shown without repeats (passages.consolidate)."""
    cfg = run.config
    if cfg.demo_block > 1:
        rng = random.Random(item_seed(cfg.seed, "respond-demos-block", position // cfg.demo_block))
    else:
        rng = random.Random(item_seed(cfg.seed, "respond-demos", c.prompt_idx, c.item_idx))
    shots = run._sample(run.seeds, cfg.demos, rng)
    hits = run.searcher.search(f"{c.instruction}\n{c.input}".strip(), cfg.passages) if run.searcher else []
    hits = [h for h in hits if h.score >= cfg.retrieval_floor]
    task = Demo(c.instruction, c.input, "", c.task_type)
    while True:
        demos = [Demo(s.instruction, s.input, s.output, s.task_type) for s in shots]
        if cfg.merge_passages:
            shown = consolidate(hits, f"{c.instruction}\n{c.input}")
        else:
            shown = [Shown(h.chunk.source.rsplit("/", 1)[-1], h.chunk.text, (h,)) for h in hits]
        passages = [Passage(p.source, p.text) for p in shown]
        prompt = response_prompt(run.project.domain, demos, passages, task, run.wrap)
        if run.generator.count_tokens(prompt) + cfg.respond.max_tokens <= run.generator.context_length:
            used = [
                {"chunk_id": h.chunk.id, "score": round(h.score, 4), "source": h.chunk.source, "passage": i}
                for i, p in enumerate(shown, 1)
                for h in p.hits
            ]
            return prompt, [s.id for s in shots], used
        if shots:
            shots = shots[:-1]
        elif hits:
            hits = hits[:-1]
        else:
            return None


def _example(
    run: Any,
    c: Candidate,
    out: Any,
    prepared: tuple,
    origins: dict,
    position: int,
    grade: float | None,  # type: ignore[type-arg]
) -> Any:
    from engine.store.generation import ExampleDraft

    cfg = run.config
    _, demo_ids, passages = prepared
    seed_ids, mixed_ids, passage_id = origins.get(c.prompt_idx, ([], [], None))
    provenance = {
        "template": cfg.template,
        "generation": run.gen.id,
        "model": run.model_name,
        "prompt": [c.prompt_idx, c.item_idx],
        "brainstorm_seed_ids": seed_ids,
        "brainstorm_mixed_ids": mixed_ids,
        "response_demo_ids": demo_ids,
        "response_demo_block": position // cfg.demo_block if cfg.demo_block > 1 else None,
        "brainstorm_sampling": cfg.brainstorm.model_dump(),
        "response_sampling": cfg.respond.model_dump(),
        "retrieval": cfg.retrieval,
        "seed": cfg.seed,
        "prompt_style": cfg.prompt_style,
    }
    if passage_id is not None:
        provenance["grounded_passage_id"] = passage_id
    if grade is not None:
        provenance["judge_grade"] = round(grade, 3)
    lps = run.label_scores.pop(c.id, None)
    if lps is not None:
        provenance["label_logprobs"] = lps
        provenance["label_bias"] = run.gen.config.get("label_bias", {}).get(c.task_type or "general", {})
    if cfg.respond_with:
        provenance["responded_by"] = cfg.respond_with
    flag = "response hit the token limit" if out.finish == "length" else ""
    return ExampleDraft(c, out.text.strip(), flag, provenance, passages)
