"""Token windows with overlap that prefer to end at a sentence or paragraph boundary."""

from __future__ import annotations

from engine.store.corpus import ChunkDraft


def chunk_text(text: str, spans: list[tuple[int, int]], size: int = 160, overlap: int = 32) -> list[ChunkDraft]:
    """Split `text` into windows of at most `size` tokens, overlapping by about `overlap`.

    `spans` are the tokens' character offsets from the embedder's tokenizer, so chunk
    lengths are measured in the tokens the embedder will actually see. A window is cut
    back to the last sentence end in its final third when there is one.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    if not spans:
        return []
    chunks: list[ChunkDraft] = []
    start = 0
    n = len(spans)
    while start < n:
        end = min(start + size, n)
        if end < n:
            end = _sentence_end(text, spans, start, end)
        a, b = spans[start][0], spans[end - 1][1]
        piece = text[a:b]
        chunks.append(ChunkDraft(piece, a, b, end - start))
        if end >= n:
            break
        start = _next_start(text, spans, max(end - overlap, start + 1), end, floor=start + 1)
    return chunks


def _boundary_before(text: str, spans: list[tuple[int, int]], i: int) -> str:
    """'sentence', 'word' or '' for the position just before token i."""
    if i == 0:
        return "sentence"
    gap = text[spans[i - 1][1] : spans[i][0]]
    if not gap:
        return ""
    if "\n" in gap or text[spans[i - 1][1] - 1] in ".?!":
        return "sentence"
    return "word"


def _next_start(text: str, spans: list[tuple[int, int]], lo: int, end: int, floor: int) -> int:
    """Start the overlap at the sentence start nearest to `lo` (looking back up to twice the
    overlap), else at the start of a whole word."""
    reach = max(floor, lo - (end - lo))
    starts = [i for i in range(reach, end) if _boundary_before(text, spans, i) == "sentence"]
    if starts:
        return min(starts, key=lambda i: abs(i - lo))
    i = lo
    while i > max(floor, lo - 8) and _boundary_before(text, spans, i) == "":
        i -= 1
    return i if _boundary_before(text, spans, i) else lo


def _sentence_end(text: str, spans: list[tuple[int, int]], start: int, end: int) -> int:
    """Cut the window back to the last sentence end in its final third, if there is one."""
    floor = start + (end - start) * 2 // 3
    for i in range(end, floor, -1):
        if _boundary_before(text, spans, i) == "sentence":
            return i
    return end
