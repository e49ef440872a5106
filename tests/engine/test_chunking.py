from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stages.chunking import chunk_text
from tests.fakes import HashEmbedder

TOK = HashEmbedder()


def chunks_of(text: str, size: int = 20, overlap: int = 5):
    return chunk_text(text, TOK.token_spans(text), size, overlap)


def test_short_text_is_one_chunk() -> None:
    text = "Insulin lowers blood glucose."
    (only,) = chunks_of(text)
    assert only.text == text and (only.char_start, only.char_end) == (0, len(text))


def test_chunks_respect_size_overlap_and_provenance() -> None:
    text = " ".join(f"Sentence number {i} talks about kidneys." for i in range(40))
    chunks = chunks_of(text, size=30, overlap=8)
    assert len(chunks) > 3
    for c in chunks:
        assert c.n_tokens <= 30
        assert text[c.char_start : c.char_end] == c.text
    for a, b in zip(chunks, chunks[1:]):
        assert b.char_start < a.char_end  # overlapping windows
        assert b.char_start > a.char_start  # always moving forward


def test_windows_prefer_sentence_ends() -> None:
    text = " ".join(f"Fact {i} is about the liver and bile." for i in range(30))
    for c in chunks_of(text, size=25, overlap=5)[:-1]:
        assert c.text.endswith(".")
        assert c.text[0].isupper()


def test_empty_text_has_no_chunks() -> None:
    assert chunk_text("", [], 10, 2) == []


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=600), st.integers(2, 40), st.integers(0, 10))
def test_any_text_is_fully_covered(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    spans = TOK.token_spans(text)
    chunks = chunk_text(text, spans, size, overlap)
    if not spans:
        assert chunks == []
        return
    assert chunks[0].char_start == spans[0][0]
    assert chunks[-1].char_end == spans[-1][1]
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    for a, b in spans:
        assert set(range(a, b)) <= covered
