"""The passages an answer prompt shows: the retrieved chunks, each sentence of the corpus once.

Chunks overlap their neighbours (chunking.py), and a grounded task's input is itself a corpus
chunk, so a top-k search often returns the input again and the same sentences two or three times.
Shown as they are, they spend the model's context (and a CPU's prompt time: the passages are most
of an answer prompt) on repeats. Here a chunk the task already shows is left out, and chunks of one
document that overlap or touch are shown as one passage spanning them, with what the task shows cut
out; passages keep the order of their best-scoring chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_WORDS = 8
"""a piece left over after cutting out what the task shows is dropped when shorter than this"""


@dataclass(frozen=True)
class Shown:
    """One passage for the prompt and the retrieved chunks it is made of."""

    source: str
    text: str
    hits: tuple[Any, ...]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _exact(chunk: Any) -> bool:
    """Whether the chunk's text is its document's characters [char_start, char_end)."""
    return len(chunk.text) == chunk.char_end - chunk.char_start


def consolidate(hits: Sequence[Any], task_text: str) -> list[Shown]:
    """`hits` (score order, each with .chunk) as passages: nothing the task text already holds,
    overlapping or touching chunks of a document merged, each sentence once."""
    task = _flat(task_text)
    in_task = [h for h in hits if _flat(h.chunk.text) and _flat(h.chunk.text) in task]
    rest = [h for h in hits if not any(h is t for t in in_task)]
    out: list[tuple[int, Shown]] = []
    by_doc: dict[int, list[tuple[int, Any]]] = {}
    for rank, h in enumerate(rest):
        if _exact(h.chunk):
            by_doc.setdefault(h.chunk.document_id, []).append((rank, h))
        else:  # offsets do not match the text: shown whole, never merged
            out.append((rank, Shown(_source(h), h.chunk.text, (h,))))
    for doc, ranked in by_doc.items():
        cut = [
            (t.chunk.char_start, t.chunk.char_end) for t in in_task if t.chunk.document_id == doc and _exact(t.chunk)
        ]
        for rank, members, spans in _merge(ranked):
            for a, b in _subtract(spans, cut):
                text = _text(members, a, b).strip()
                if len(text.split()) >= MIN_WORDS:
                    out.append((rank, Shown(_source(members[0]), text, tuple(members))))
    out.sort(key=lambda item: item[0])
    return [shown for _, shown in out]


def _source(hit: Any) -> str:
    return str(hit.chunk.source).rsplit("/", 1)[-1]


def _merge(ranked: list[tuple[int, Any]]) -> list[tuple[int, list[Any], tuple[int, int]]]:
    """Runs of overlapping or touching chunks: (best rank, chunks by position, (start, end))."""
    ordered = sorted(ranked, key=lambda rh: (rh[1].chunk.char_start, rh[1].chunk.char_end))
    runs: list[tuple[int, list[Any], tuple[int, int]]] = []
    for rank, h in ordered:
        a, b = h.chunk.char_start, h.chunk.char_end
        if runs and a <= runs[-1][2][1]:
            best, members, (s, e) = runs[-1]
            runs[-1] = (min(best, rank), [*members, h], (s, max(e, b)))
        else:
            runs.append((rank, [h], (a, b)))
    return runs


def _subtract(span: tuple[int, int], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `span` outside every `cut` span."""
    pieces = [span]
    for c0, c1 in cut:
        pieces = [p for a, b in pieces for p in ((a, min(b, c0)), (max(a, c1), b)) if p[0] < p[1]]
    return pieces


def _text(members: list[Any], a: int, b: int) -> str:
    """The document's characters [a, b), read from the chunks that cover them."""
    parts, pos = [], a
    for h in members:  # by position; together they cover [a, b)
        c = h.chunk
        if c.char_end <= pos or c.char_start > pos:
            continue
        end = min(c.char_end, b)
        parts.append(c.text[pos - c.char_start : end - c.char_start])
        pos = end
        if pos >= b:
            break
    return "".join(parts)
