"""Filters for brainstormed tasks (near-duplicates by ROUGE-L and by embedding, heuristics for junk)
and for answers (empty, non-text, loops and repetition, off-task).

ROUGE-L here is the rouge-score package's (its own tokenizer, F-measure from LCS precision and
recall, computed with the same float operations), with the LCS lengths from rapidfuzz's
bit-parallel implementation: one candidate against a pool of 20,000 takes about a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from rouge_score.tokenize import tokenize as rouge_tokenize

from engine.spec.generate import FilterConfig

_FIRST_CODE = 0x100  # token codes start past Latin-1; surrogates are skipped


class _Postings:
    """Pool items holding one token, with its count in each: a growable pair of arrays."""

    __slots__ = ("items", "counts", "n")

    def __init__(self) -> None:
        self.items = np.empty(8, dtype=np.int64)
        self.counts = np.empty(8, dtype=np.int32)
        self.n = 0

    def append(self, item: int, count: int) -> None:
        if self.n == len(self.items):
            self.items = np.resize(self.items, 2 * self.n)
            self.counts = np.resize(self.counts, 2 * self.n)
        self.items[self.n], self.counts[self.n] = item, count
        self.n += 1


class RougePool:
    """Instructions already taken (seeds, kept tasks) and the best ROUGE-L of a new one against them.

    A candidate's LCS with an item is at most their shared token count, so an inverted index first
    rules out every item that cannot reach the threshold; the exact LCS (rapidfuzz) is computed
    for the rest. Decisions are therefore exactly rouge-score's; the score is exact whenever
    something could exceed the threshold.
    """

    def __init__(self) -> None:
        self._codes: dict[str, str] = {}
        self._encoded: list[str] = []
        self._lengths = np.empty(0, dtype=np.float64)
        self._labels: list[str] = []
        self._postings: dict[str, _Postings] = {}

    def __len__(self) -> int:
        return len(self._encoded)

    def encode(self, text: str) -> str:
        """The text's rouge-score tokens, one character per distinct token (LCS is unchanged)."""
        out = []
        for token in rouge_tokenize(text, None):
            code = self._codes.get(token)
            if code is None:
                n = _FIRST_CODE + len(self._codes)
                if n >= 0xD800:
                    n += 0x800
                code = self._codes[token] = chr(n)
            out.append(code)
        return "".join(out)

    def add(self, text: str, label: str) -> None:
        encoded = self.encode(text)
        item = len(self._encoded)
        self._encoded.append(encoded)
        self._labels.append(label)
        if item == len(self._lengths):
            self._lengths = np.resize(self._lengths, max(64, 2 * item))
        self._lengths[item] = len(encoded)
        for code, count in Counter(encoded).items():
            self._postings.setdefault(code, _Postings()).append(item, count)

    def best(self, text: str, threshold: float = 0.0) -> tuple[float, str]:
        """Highest ROUGE-L F-measure of `text` among pool items that could score above `threshold`."""
        encoded = self.encode(text)
        size = len(self._encoded)
        if not encoded or not size:
            return 0.0, ""
        lengths = self._lengths[:size]
        shared = np.zeros(size, dtype=np.int32)
        for code, count in Counter(encoded).items():
            post = self._postings.get(code)
            if post is not None:
                shared[post.items[: post.n]] += np.minimum(post.counts[: post.n], count)
        # F = 2*lcs/(lc+lr) > t needs lcs > t*(lc+lr)/2, and lcs <= shared (small margin for rounding)
        reachable = np.nonzero((shared > 0) & (shared >= threshold * (len(encoded) + lengths) / 2 - 1e-9))[0]
        if not len(reachable):
            return 0.0, ""
        choices = [self._encoded[i] for i in reachable]
        lcs = process.cdist([encoded], choices, scorer=LCSseq.similarity, dtype=np.int32, workers=1)[0]
        item_lengths = lengths[reachable]
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = lcs / len(encoded)
            recall = np.where(item_lengths > 0, lcs / item_lengths, 0.0)
            total = precision + recall
            f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
        i = int(np.argmax(f))
        return float(f[i]), self._labels[int(reachable[i])]


_MODALITY = re.compile(
    r"\b(images?|pictures?|photos?|photographs?|graphs?|charts?|files?|maps?|draw|drawing|drawings|plots?|"
    r"sketch|diagrams?|flowcharts?|videos?|audio|recordings?|music)\b",
    re.IGNORECASE,
)
_PROGRAM = re.compile(
    r"\b(write|create|implement|develop|generate)\s+(a|an|the|some)?\s*(\w+\s+){0,2}(program|script|code|function)\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"<[A-Za-z_ ]{1,30}>|\[(insert|your|placeholder)[^\]]*\]|\{[a-z_ ]{1,30}\}", re.IGNORECASE)


def _words(text: str) -> int:
    return len(text.split())


def _text_problem(text: str) -> str | None:
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in "\n\t" for c in text):
        return "non_printable"
    visible = [c for c in text if not c.isspace()]
    if visible and sum(c.isalpha() for c in visible) / len(visible) < 0.5:
        return "non_text"
    if visible and sum(not c.isascii() for c in visible) / len(visible) > 0.2:
        return "non_ascii"
    return None


@dataclass(frozen=True)
class Verdict:
    reason: str = ""
    detail: str = ""

    @property
    def kept(self) -> bool:
        return not self.reason


KEEP = Verdict()


def check_task(instruction: str, input_text: str, config: FilterConfig, seed_instructions: set[str]) -> Verdict:
    """Heuristic checks on one task; the first failing one is the reason."""
    n = _words(instruction)
    if n < config.min_words:
        return Verdict("too_short", f"{n} words (minimum {config.min_words})")
    if n > config.max_words:
        return Verdict("too_long", f"{n} words (maximum {config.max_words})")
    if _words(input_text) > config.max_input_words:
        return Verdict("input_too_long", f"input has {_words(input_text)} words (maximum {config.max_input_words})")
    for field, text in (("instruction", instruction), ("input", input_text)):
        problem = _text_problem(text)
        if problem:
            return Verdict(problem, f"in the {field}")
    if not instruction[0].isalnum():
        return Verdict("starts_with_punctuation", repr(instruction[:12]))
    if _PROGRAM.search(instruction):
        return Verdict("asks_for_program", _PROGRAM.search(instruction).group(0))  # type: ignore[union-attr]
    found = _MODALITY.search(instruction)
    if found:
        return Verdict("needs_other_modality", f"mentions {found.group(0)!r}")
    placeholder = _PLACEHOLDER.search(input_text) or _PLACEHOLDER.search(instruction)
    if placeholder:
        return Verdict("placeholder", f"contains {placeholder.group(0)!r}")
    if " ".join(instruction.split()).lower() in seed_instructions:
        return Verdict("equals_seed", "same instruction as a seed")
    return KEEP


def normalized(text: str) -> str:
    return " ".join(text.split()).lower()


LOOP_MIN_CHARS = 300
"""answers shorter than this are not judged by their compression (short texts compress poorly)"""
REPEAT_MIN_WORDS = 20
ON_TASK_MIN_WORDS = 5
"""answers shorter than this (a label, a number) are not compared with their task"""


def repeat_share(text: str, n: int = 4) -> float:
    """The share of the text's word n-grams that already occurred earlier in it."""
    words = [w.strip(".,;:!?()\"'").lower() for w in text.split()]
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(text: str) -> float:
    """zlib-compressed size over raw size: about 0.5 for prose, far lower for a loop."""
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


def check_response(output: str, config: FilterConfig | None = None) -> Verdict:
    if not output.strip():
        return Verdict("empty_response", "the model wrote nothing")
    problem = _text_problem(output)
    if problem:
        return Verdict(f"{problem}_response", "in the response")
    if config is None:
        return KEEP
    if _words(output) >= REPEAT_MIN_WORDS:
        share = repeat_share(output)
        if share > config.max_repeat_share:
            return Verdict("repetition", f"{share:.0%} of its 4-word sequences repeat earlier ones")
    if len(output) >= LOOP_MIN_CHARS:
        ratio = compression_ratio(output)
        if ratio < config.min_compression:
            return Verdict("loop", f"compresses to {ratio:.0%} of its size")
    return KEEP


DOOM_EVERY = 32
"""tokens between the answer watch's looks"""


def doomed_watch(config: FilterConfig) -> Callable[[str, int], int | None]:
    """Ends an answer as soon as what it has written already fails the repetition or loop check:
    a greedy small model that starts repeating itself rarely stops before its token limit, and the
    answer would be dropped anyway, so the tokens after that point are wasted. The answer is then
    dropped for the reason check_response gives its text. Looks every DOOM_EVERY tokens and at line ends."""

    def check(text: str, tokens: int) -> int | None:
        if tokens % DOOM_EVERY and not text.endswith("\n"):
            return None
        verdict = check_response(text, config)
        return len(text) if verdict.reason in ("repetition", "loop") else None

    return check


def check_on_task(similarity: float, output: str, config: FilterConfig) -> Verdict:
    """An answer of a few words or more must be about its task (embedding cosine with instruction + input)."""
    if _words(output) < ON_TASK_MIN_WORDS or similarity >= config.min_answer_similarity:
        return KEEP
    return Verdict("off_task", f"cosine {similarity:.2f} with its task (minimum {config.min_answer_similarity})")


class SemanticPool:
    """Embeddings of the tasks already taken and the closest one to a new task (exact cosine).

    Each text is embedded alone (no padding), so a resumed run gets the vectors an uninterrupted
    one had."""

    def __init__(self, embedder: object) -> None:
        self.embedder = embedder
        self._vectors = np.empty((0, 0), dtype=np.float32)
        self._labels: list[str] = []

    def __len__(self) -> int:
        return len(self._labels)

    def vector(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder.embed([text])[0], dtype=np.float32)  # type: ignore[attr-defined]

    def add(self, text: str, label: str, vector: np.ndarray | None = None) -> None:
        v = self.vector(text) if vector is None else vector
        n = len(self._labels)
        if n == len(self._vectors):
            grown = np.zeros((max(64, 2 * n), len(v)), dtype=np.float32)
            if n:
                grown[:n] = self._vectors[:n]
            self._vectors = grown
        self._vectors[n] = v
        self._labels.append(label)

    def best(self, text: str) -> tuple[float, str, np.ndarray]:
        """Highest cosine with a pooled task, its label, and the text's vector (to add it after)."""
        v = self.vector(text)
        if not self._labels:
            return 0.0, "", v
        sims = self._vectors[: len(self._labels)] @ v
        i = int(np.argmax(sims))
        return float(sims[i]), self._labels[i], v
