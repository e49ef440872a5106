"""Filters for brainstormed tasks: near-duplicates by ROUGE-L, and heuristics for junk.

ROUGE-L here is the rouge-score package's (its own tokenizer, F-measure from LCS precision and
recall, computed with the same float operations), with the LCS lengths from rapidfuzz's
bit-parallel implementation: one candidate against a pool of 20,000 takes about a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from rouge_score.tokenize import tokenize as rouge_tokenize

from engine.stages.gen_config import FilterConfig

_FIRST_CODE = 0x100  # token codes start past Latin-1; surrogates are skipped


class RougePool:
    """Instructions already taken (seeds, kept tasks) and the best ROUGE-L of a new one against them."""

    def __init__(self) -> None:
        self._codes: dict[str, str] = {}
        self._encoded: list[str] = []
        self._lengths: list[int] = []
        self._labels: list[str] = []
        self._len_array: np.ndarray | None = None

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
        self._encoded.append(encoded)
        self._lengths.append(len(encoded))
        self._labels.append(label)
        self._len_array = None

    def best(self, text: str) -> tuple[float, str]:
        """Highest ROUGE-L F-measure of `text` against the pool, and what it matched."""
        encoded = self.encode(text)
        if not encoded or not self._encoded:
            return 0.0, ""
        lcs = process.cdist([encoded], self._encoded, scorer=LCSseq.similarity, dtype=np.int32, workers=1)[0]
        if self._len_array is None:
            self._len_array = np.asarray(self._lengths, dtype=np.float64)
        lengths = self._len_array
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = lcs / len(encoded)
            recall = np.where(lengths > 0, lcs / lengths, 0.0)
            total = precision + recall
            f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
        i = int(np.argmax(f))
        return float(f[i]), self._labels[i]


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


def check_response(output: str) -> Verdict:
    if not output.strip():
        return Verdict("empty_response", "the model wrote nothing")
    problem = _text_problem(output)
    if problem:
        return Verdict(f"{problem}_response", "in the response")
    return KEEP
