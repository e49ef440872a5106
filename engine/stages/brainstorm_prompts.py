"""The brainstorm prompt of each index: its demonstrations, and when grounded its passage, task type
and instruction lead-in. Everything derives from (generation seed, prompt index) and the stored
seeds and corpus, so a resumed run builds the same prompts."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError
from engine.stages.gen_setup import balanced_sample, item_seed
from engine.stages.templates import (
    Demo,
    brainstorm_prefix,
    brainstorm_prompt,
    grounded_prefix,
    grounded_prompt,
    grounded_requirements,
    instruction_lead,
    requirements,
)
from engine.store.records import Candidate, Seed


@dataclass(frozen=True)
class Fitted:
    """One brainstorm prompt that fits the context, and what it was built from."""

    prompt: str
    prefix: str  # what the prompt already wrote of the first new task (the parser reads it too)
    n_demos: int
    seed_ids: list[int]
    mixed_ids: list[list[int]]
    passage_id: int | None = None


class BrainstormPrompts:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.config = run.config
        self.seeds: list[Seed] = run.seeds
        self._passages: list[int] | None = None

    def fit(self, idx: int, kept: list[Candidate]) -> Fitted | None:
        """Prompt `idx` with as many demonstrations (up to --k) as fit the context with the limit."""
        run, domain = self.run, self.run.project.domain
        passage = self.passage(idx) if run.grounded else None
        if passage:
            reqs = grounded_requirements(domain, self.task_types())
        else:
            reqs = requirements(domain, self.task_types(), self.config.topics)
        for k in range(self.config.k_seeds, 0, -1):
            demos, seed_ids, mixed_ids = self.demos(idx, kept, k)
            if passage:
                task_type, lead = self.grounded_type(idx), self.lead(idx)
                prompt = grounded_prompt(domain, demos, reqs, passage[1], task_type, run.wrap, lead)
                prefix = grounded_prefix(len(demos), passage[1], task_type, lead)
            else:
                prompt = brainstorm_prompt(domain, demos, reqs, run.wrap)
                prefix = brainstorm_prefix(len(demos))
            if run.generator.count_tokens(prompt) + run.limit <= run.generator.context_length:
                return Fitted(prompt, prefix, len(demos), seed_ids, mixed_ids, passage[0] if passage else None)
        return None

    def demos(self, idx: int, kept: list[Candidate], k: int) -> tuple[list[Demo], list[int], list[list[int]]]:
        cfg = self.config
        if self.run.grounded:  # seeds of the prompt's task type with an input; one set per block of prompts
            task_type = self.grounded_type(idx)
            rng = random.Random(item_seed(cfg.seed, "grounded-demos", idx // cfg.demo_block, task_type))
            pool = self._of_type(task_type)
            picked = rng.sample(pool, min(k, len(pool)))
            return [Demo(s.instruction, s.input, s.output, s.task_type) for s in picked], [s.id for s in picked], []
        rng = random.Random(item_seed(cfg.seed, "demos", idx))
        n_gen = min(cfg.k_generated, len(kept), k - 1)
        picked_seeds = self.sample(self.seeds, k - n_gen, rng)
        picked_gen = rng.sample(kept, n_gen) if n_gen else []
        demos = [Demo(s.instruction, s.input, s.output, s.task_type) for s in picked_seeds]
        demos += [Demo(c.instruction, c.input, "", c.task_type) for c in picked_gen]
        rng.shuffle(demos)
        return demos, [s.id for s in picked_seeds], [[c.prompt_idx, c.item_idx] for c in picked_gen]

    def sample(self, pool: list[Seed], k: int, rng: random.Random) -> list[Seed]:
        """k seeds: of k different task types when balanced (ss-v3), else uniformly."""
        if self.config.balanced_demos:
            return balanced_sample(pool, k, rng)
        return rng.sample(pool, min(k, len(pool)))

    def grounded_type(self, idx: int) -> str:
        """The task type prompt `idx` asks for: drawn in proportion to the seeds with an input (the
        seed set says what the domain's tasks look like); the same type for a block of prompts."""
        rng = random.Random(item_seed(self.config.seed, "grounded-type", idx // self.config.demo_block))
        return rng.choice(sorted(s.task_type or "general" for s in self.seeds if s.input.strip()))

    def passage(self, idx: int) -> tuple[int, str]:
        """The corpus chunk prompt `idx` is grounded on: a fixed shuffle of the corpus, in turn."""
        from engine.store import corpus

        if self._passages is None:
            ids = corpus.chunk_ids(self.run.ctx.db, self.run.project)
            if not ids:
                raise UserError("grounded tasks need a corpus: import documents, or generate with --grounded off")
            random.Random(item_seed(self.config.seed, "passages")).shuffle(ids)
            self._passages = ids
        chunk_id = self._passages[idx % len(self._passages)]
        return chunk_id, corpus.get_chunks(self.run.ctx.db, [chunk_id])[chunk_id].text

    def task_types(self) -> list[str]:
        counts = Counter(s.task_type for s in self.seeds if s.task_type)
        return [t for t, _ in counts.most_common()]

    def _of_type(self, task_type: str) -> list[Seed]:
        return [s for s in self.seeds if s.input.strip() and (s.task_type or "general") == task_type]

    def lead(self, idx: int) -> str:
        """A lead-in for prompt `idx`'s instruction, from a seed of its type drawn at random ('' when
        that seed has none): the model then writes only the question that follows it."""
        pool = self._of_type(self.grounded_type(idx))
        if not pool:
            return ""
        rng = random.Random(item_seed(self.config.seed, "grounded-lead", idx))
        return instruction_lead(rng.choice(pool).instruction)
