"""The tests' plugin (SELFSPEC_PLUGINS=fakes): a hashing embedder and a deterministic generator.

Importing this module registers them with the engine's registry, as any runtime plugin would:
the model name `fake-generator` runs on the `fake` runtime, embedder names starting with
`fake-hash` build a HashEmbedder. Product code never names either.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np

from engine.backends import registry
from engine.backends.types import Completion, cut_at_stop, watched
from engine.stages.templates import BRAINSTORM_HEAD, PASSAGES_HEAD

FAKE_MODEL = "fake-generator"

_WORD = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """Bag of hashed lowercase words: texts sharing words get similar vectors."""

    name = "fake-hash"
    dim = 64

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in _WORD.finditer(text)]

    def embed(self, texts: list[str]) -> np.ndarray:
        delay = float(os.environ.get("SELFSPEC_FAKE_EMBED_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)  # lets tests interrupt a run mid-way
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else 1.0 / np.sqrt(self.dim)
        return out


_TOPICS = [
    "metformin",
    "insulin resistance",
    "beta blockers",
    "sepsis",
    "statins",
    "asthma",
    "warfarin",
    "anemia",
    "hypertension",
    "vaccination",
    "antibiotic resistance",
    "chronic kidney disease",
    "heart failure",
    "thyroid function",
    "migraine",
    "osteoporosis",
    "hepatitis B",
    "malaria",
    "obesity",
    "depression",
]
_FORMS = [
    ("yes_no_qa", "Based on the passage, answer yes, no or maybe: does {a} change the course of {b}?"),
    ("explanation", "Explain in two sentences how {a} relates to {b} in adult patients."),
    ("extraction", "List every drug named in the note and say which one is used for {b}."),
    ("summarization", "Summarize the findings about {a} and {b} for a general practitioner."),
    ("multiple_choice", "Which option best describes the main risk of combining {a} with {b}?"),
    ("classification", "Classify the study below on {a} as a trial, a cohort study or a case report."),
]
_ANGLES = [
    "age",
    "pregnancy",
    "renal function",
    "liver function",
    "dose timing",
    "drug interactions",
    "cost",
    "adherence",
    "genetic variants",
    "comorbid diabetes",
    "smoking",
    "alcohol use",
    "trial evidence",
    "guideline advice",
    "side effects",
    "monitoring",
    "diet",
    "exercise",
    "sex differences",
    "frailty",
    "children",
    "intensive care",
    "outpatient follow-up",
    "biomarkers",
    "imaging-free diagnosis",
]
_JUNK = [
    ("diagram", "Draw a diagram showing how {a} works."),
    ("short", "Define {a}."),
    ("program", "Write a Python program that computes the dose of {a}."),
]


class FakeGenerator:
    """Deterministic text for pipeline tests: task lists for brainstorm prompts, answers otherwise.

    Output depends only on (prompt, seed), like a real model with a fixed seed. SELFSPEC_FAKE_GEN_DELAY
    (seconds per completion) lets tests interrupt a run mid-way.
    """

    name = "fake-generator"
    context_length = 4096
    batch_size = 1

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def _rng(self, prompt: str, seed: int):  # type: ignore[no-untyped-def]
        import random

        digest = hashlib.blake2b(f"{seed}\n{prompt}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "little"))

    def _tasks(self, prompt: str, seed: int) -> str:
        rng = self._rng(prompt, seed)
        blocks = []
        n_tasks = rng.randint(1, 4)
        for i in range(n_tasks):
            a, b = rng.sample(_TOPICS, 2)
            kind, form = rng.choice(_JUNK) if rng.random() < 0.2 else rng.choice(_FORMS)
            text = form.format(a=a, b=b)
            if kind not in ("short",) and rng.random() < 0.85:  # most tasks add their own angle
                extra = rng.sample(_ANGLES, 3)
                text = text.rstrip(".?") + f", considering {extra[0]}, {extra[1]} and {extra[2]}."
            if prompt.endswith("Instruction:"):  # a grounded prompt: the instruction of one task
                return f" {text}\nTask 99\nInput: more text the watch cuts off\n"
            given = f"A patient with {b} was treated with {a}; after {rng.randint(2, 30)} weeks the outcome improved."
            head = " " if i == 0 else f"\nTask {i + 9}\nType: "
            blocks.append(f"{head}{kind}\nInstruction: {text}\nInput: {given}\n")
        return "".join(blocks)

    def _answer(self, prompt: str, seed: int) -> str:
        rng = self._rng(prompt, seed)
        cited = "[1]" if PASSAGES_HEAD in prompt else "general knowledge"
        return f"According to {cited}, the answer is {rng.choice(['yes', 'no', 'maybe'])} because " + " ".join(
            rng.sample(_TOPICS, 3)
        )

    def generate(self, prompts, sampling, seeds, cancel, watch=None):  # type: ignore[no-untyped-def]
        delay = float(os.environ.get("SELFSPEC_FAKE_GEN_DELAY", "0") or 0)
        out = []
        for prompt, seed in zip(prompts, seeds):
            if cancel():
                break
            if delay:
                time.sleep(delay)
            text = self._tasks(prompt, seed) if BRAINSTORM_HEAD in prompt else self._answer(prompt, seed)
            text, stopped = cut_at_stop(text, sampling.stop)
            words = text.split(" ")
            finish = "stop"
            if len(words) > sampling.max_tokens:
                text, finish = " ".join(words[: sampling.max_tokens]), "length"
            out.append(Completion(text, finish, self.count_tokens(prompt), min(len(words), sampling.max_tokens)))
        return [watched(c, watch) for c in out]

    def label_logprobs_many(self, prompts, labels):  # type: ignore[no-untyped-def]
        """Deterministic label scores per prompt (self-judging's grades, for instance)."""
        out = []
        for prompt, options in zip(prompts, labels):
            rng = self._rng(prompt, 0)
            out.append([-rng.uniform(0.2, 4.0) for _ in options])
        return out

    def close(self) -> None:
        pass


def open_generator(model: object, options: object) -> FakeGenerator:
    return FakeGenerator()


registry.register_runtime(registry.Runtime("fake", __name__, ("fake",), default_for=("fake",)))
registry.register_model(FAKE_MODEL, registry.NamedModel("fake", Path(FAKE_MODEL), "fake"))
registry.register_embedder("fake-hash", lambda name: HashEmbedder())
