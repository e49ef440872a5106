"""The multi-sequence llama.cpp context on the embedded default: the keeper's prefix outlives a call,
and a call on a warm keeper gives exactly what it gives on a fresh context (scores and text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backends.runtimes.llama_batch import PREFIX_STEP, BatchContext
from engine.backends.types import Sampling

HEAD = 2 * (
    "You are a careful clinician. Answer each question with yes, no or maybe.\n\n"
    "Question: Does smoking raise the risk of lung cancer?\nAnswer: yes\n\n"
    "Question: Is insulin made in the liver?\nAnswer: no\n\n"
    "Question: Does aspirin lower the risk of a second heart attack?\nAnswer: yes\n\n"
    "Question: Is anemia always caused by iron deficiency?\nAnswer: no\n\n"
)
FIRST = ["Is metformin a first drug for type 2 diabetes?", "Do statins lower LDL cholesterol?"]
SECOND = [
    "Can vitamin D prevent all fractures?",
    "Is hypertension a risk factor for stroke?",
    "Do antibiotics cure flu?",
]
OTHER_HEAD = "Reply in one word.\n\n" * 12


@pytest.fixture(scope="module")
def gguf() -> Path:
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    path = builtin_path(DEFAULT_MODEL)
    if path is None:
        pytest.skip("the embedded default model is not installed")
    return path


def _prompts(ctx: BatchContext, head: str, questions: list[str]) -> list[list[int]]:
    return [ctx.tokenize(f"{head}Question: {q}\nAnswer:") for q in questions]


def _labels(ctx: BatchContext, n: int) -> list[list[list[int]]]:
    return [[ctx.tokenize(w, bos=False) for w in (" yes", " no", " maybe")]] * n


def test_a_warm_keeper_scores_and_generates_as_a_fresh_context(gguf: Path) -> None:
    warm, cold = BatchContext(gguf, 2, 512, 13), BatchContext(gguf, 2, 512, 13)
    try:
        first = _prompts(warm, HEAD, FIRST)
        second = _prompts(warm, HEAD, SECOND)
        assert min(map(len, second)) > 2 * PREFIX_STEP
        warm.label_logprobs(first, _labels(warm, 2))
        saved = warm.prefix_tokens_saved
        scores = warm.label_logprobs(second, _labels(warm, 3))
        cut = len(warm._kept)
        assert cut >= PREFIX_STEP and cut % PREFIX_STEP == 0
        assert warm.prefix_tokens_saved - saved == 3 * cut  # all three started from the kept prefix
        assert cold.label_logprobs(second, _labels(cold, 3)) == scores  # bit for bit
        assert cold.prefix_tokens_saved == 2 * cut  # a fresh context evaluated it once
        # sampled text: the same seeds give the same completions on the warm keeper
        sampling = Sampling(1.0, 0.95, 12)
        warm.generate(first, sampling, [1, 2], lambda: False)
        again = warm.generate(second, sampling, [3, 4, 5], lambda: False)
        fresh = BatchContext(gguf, 2, 512, 13)
        try:
            assert [c.text for c in fresh.generate(second, sampling, [3, 4, 5], lambda: False)] == [
                c.text for c in again
            ]
        finally:
            fresh.close()
        # another prefix replaces the keeper's, and still scores as a fresh context does
        other = _prompts(warm, OTHER_HEAD, SECOND)
        assert warm.label_logprobs(other, _labels(warm, 3)) == cold.label_logprobs(other, _labels(cold, 3))
        assert warm._kept == other[0][: len(warm._kept)] and warm._kept != second[0][: len(warm._kept)]
    finally:
        warm.close()
        cold.close()
