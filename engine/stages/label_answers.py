"""Answers chosen from a label set, with the model's label bias measured on the seeds and removed.

A small base model asked a yes/no/maybe question answers "yes" almost every time: its generated
labels teach the expert that bias, not the domain. Its label log-likelihoods do carry signal under
the bias, and the user's seeds of that task type are labelled examples to measure the bias on.

So for a task type whose seeds all answer from a small label set (yes/no/maybe, a sentiment, ...),
the answer is the label with the highest log-likelihood after the answer prompt plus a per-label
offset; the offsets maximise macro-F1 on the generation's own seeds of that type (never the
held-out ones), scored with the same prompt form. They are computed once per generation and stored
in its config, so a resumed run answers with the same offsets.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from engine.stages import calibration
from engine.stages.gen_setup import item_seed
from engine.stages.scoring import normalize_answer
from engine.stages.templates import Demo, Passage, response_prompt
from engine.store import generation as store
from engine.store.records import Seed

MIN_SEEDS = 6
"""a task type needs this many labelled seeds to be answered by label"""
MAX_LABELS = 6
CALIBRATION_CALL = 6
"""seed prompts scored per call while fitting the label bias"""
MAX_LABEL_WORDS = 3


def label_types(seeds: Sequence[Seed]) -> dict[str, list[str]]:
    """Task types whose seeds answer from a small closed set: type -> its labels (seed spelling)."""
    by_type: dict[str, list[Seed]] = {}
    for s in seeds:
        by_type.setdefault(s.task_type or "general", []).append(s)
    out = {}
    for kind, members in by_type.items():
        answers = [s.output.strip().rstrip(".") for s in members]
        if len(members) < MIN_SEEDS or any(len(a.split()) > MAX_LABEL_WORDS or not a for a in answers):
            continue
        counts = Counter(normalize_answer(a) for a in answers)
        if len(counts) > MAX_LABELS or len(counts) < 2 or counts.most_common(1)[0][1] < 2:
            continue
        spelled: dict[str, str] = {}
        for a in answers:
            spelled.setdefault(normalize_answer(a), a.lower())
        out[kind] = [spelled[k] for k in sorted(spelled)]
    return out


class LabelAnswers:
    """Per generation: which tasks are answered by label, and the offsets fitted on the seeds."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.score = getattr(run.generator, "label_logprobs_many", None)
        on = run.config.label_answers and self.score is not None
        self.types = label_types(run.seeds) if on else {}
        self.bias: dict[str, dict[str, float]] = dict(run.gen.config.get("label_bias", {}))

    def labels_for(self, task_type: str) -> list[str] | None:
        return self.types.get(task_type or "general")

    def calibrate(self) -> None:
        """Fit and store the offsets of every label type not fitted yet (one pass over its seeds)."""
        missing = [t for t in self.types if t not in self.bias]
        if not missing:
            return
        run = self.run
        sets = {
            kind: calibration_set(run.seeds, kind, self.types[kind], run.config.calibration_seeds, run.config.seed)
            for kind in missing
        }
        progress = run.ctx.progress("label bias", sum(len(m) for m in sets.values()), "seeds scored")
        for kind, members in sets.items():
            labels = self.types[kind]
            prompts = [self._seed_prompt(s, kind) for s in members]
            found: list[list[float]] = []
            for at in range(0, len(prompts), CALIBRATION_CALL):  # a call at a time: progress and cancel
                run.ctx.check_stop()
                part = prompts[at : at + CALIBRATION_CALL]
                found += self.score(part, [labels] * len(part))  # type: ignore[misc]
                progress.advance(len(part))
            gold = [_spelled(s.output, labels) for s in members]
            lps = [dict(zip(labels, row)) for row in found]
            self.bias[kind] = {k: round(v, 3) for k, v in calibration.fit_bias(lps, gold, labels).items()}
            raw = sum(calibration.predict(lp, {}) == g for lp, g in zip(lps, gold))
            fitted = sum(calibration.predict(lp, self.bias[kind]) == g for lp, g in zip(lps, gold))
            run.ctx.log(
                f"{kind}: answered by label {labels}; offsets {self.bias[kind]} fitted on {len(members)} seeds "
                f"({raw} right before, {fitted} after)"
            )
        config = {**run.gen.config, "label_bias": self.bias}
        store.set_config(run.ctx.db, run.gen.id, config)
        run.gen = store.get(run.ctx.db, run.gen.id)

    def _seed_prompt(self, seed: Seed, kind: str) -> str:
        """A seed asked the way a generated task of its type is: demonstrations and passages."""
        run, cfg = self.run, self.run.config
        rng = random.Random(item_seed(cfg.seed, f"label-calibration/{kind}"))
        shots = [s for s in run._sample(run.seeds, cfg.demos + 1, rng) if s.id != seed.id][: cfg.demos]
        hits = run.searcher.search(f"{seed.instruction}\n{seed.input}".strip(), cfg.passages) if run.searcher else []
        hits = [h for h in hits if h.score >= cfg.retrieval_floor]
        demos = [Demo(s.instruction, s.input, s.output, s.task_type) for s in shots]
        passages = [Passage(h.chunk.source.rsplit("/", 1)[-1], h.chunk.text) for h in hits]
        task = Demo(seed.instruction, seed.input, "", seed.task_type)
        return response_prompt(run.project.domain, demos, passages, task, run.wrap)

    def answer(self, prompts: Sequence[str], kinds: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
        """The chosen label and the label log-likelihoods of each prompt."""
        labels = [self.types[k] for k in kinds]
        found = self.score(prompts, labels)  # type: ignore[misc]
        out = []
        for kind, options, row in zip(kinds, labels, found):
            lps = {label: round(v, 4) for label, v in zip(options, row)}
            out.append((calibration.predict(lps, self.bias.get(kind, {})), lps))
        return out


def calibration_set(seeds: Sequence[Seed], kind: str, labels: Sequence[str], cap: int, seed: int) -> list[Seed]:
    """The seeds of one label type the offsets are fitted on: all of them, or `cap` taken in turn
    from each label (each label's seeds in a fixed shuffled order), so every label is represented."""
    members = [s for s in seeds if (s.task_type or "general") == kind]
    if cap <= 0 or len(members) <= cap:
        return members
    queues: dict[str, list[Seed]] = {label: [] for label in labels}
    for s in sorted(members, key=lambda s: item_seed(seed, "label-calibration-set", s.id)):
        queues[_spelled(s.output, labels)].append(s)
    picked: list[Seed] = []
    while len(picked) < cap:
        for label in labels:
            if queues[label] and len(picked) < cap:
                picked.append(queues[label].pop(0))
    return sorted(picked, key=lambda s: s.id)


def _spelled(output: str, labels: Sequence[str]) -> str:
    key = normalize_answer(output)
    return next((label for label in labels if normalize_answer(label) == key), labels[0])
