"""Self-judging: the generation's own model grades each answer 1-5 by the likelihood of each grade.

No free text is parsed: the prompt ends at "Grade:", the five grades are scored as continuations,
and the expected grade under their normalised probabilities is the answer's grade. The generator
scores with its own weights where the runtime can (llama.cpp); otherwise a scorer of the same model
is opened once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from engine.errors import UserError
from engine.stages.templates import NO_INPUT

GRADES = (" 1", " 2", " 3", " 4", " 5")
RUBRIC = (
    "5: correct, complete and to the point; 4: correct with small gaps; 3: partly correct or vague; "
    "2: mostly wrong, off the task or repetitive; 1: wrong, empty or nonsense."
)


def grade_prompt(domain: str, instruction: str, input_text: str, answer: str) -> str:
    return (
        f"You are a strict {domain} expert grading answers to tasks on a scale of 1 to 5.\n"
        f"Rubric: {RUBRIC}\n\n"
        f"Task: {instruction.strip()}\n"
        f"Input: {input_text.strip() or NO_INPUT}\n"
        f"Answer: {answer.strip()}\n\n"
        "Grade:"
    )


def expected_grade(logprobs: Sequence[float]) -> float:
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return sum((i + 1) * w for i, w in enumerate(weights)) / sum(weights)


class Grader:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.score = getattr(run.generator, "label_logprobs_many", None)
        self._scorer: Any = None
        if self.score is None:
            self._open_scorer()

    def _open_scorer(self) -> None:
        from engine.backends import registry
        from engine.backends.types import ModelFile
        from engine.stages import models

        fmt, path, _ = models.resolve(self.run.ctx.db, self.run.model_name)
        try:
            self._scorer = registry.open_scorer(ModelFile(self.run.model_name, fmt, path), self.run.ctx.threads)
        except UserError as exc:
            raise UserError(f"self-judging needs a runtime that scores labels: {exc}") from exc
        self.score = getattr(self._scorer, "label_logprobs_many", None) or (
            lambda prompts, labels: [self._scorer.label_logprobs(p, list(ls)) for p, ls in zip(prompts, labels)]
        )

    def grade(self, answered: Sequence[tuple[Any, str]]) -> list[float]:
        if not answered:
            return []
        domain = self.run.project.domain
        prompts = [grade_prompt(domain, c.instruction, c.input, text) for c, text in answered]
        found = self.score(prompts, [GRADES] * len(prompts))  # type: ignore[misc]
        return [expected_grade(lps) for lps in found]
