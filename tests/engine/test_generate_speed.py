"""ss-v4: answer prompts show each retrieved sentence once, an answer that already repeats itself is
ended at once, and a small quantized GGUF generates on an F16 copy of its weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.spec.generate import FilterConfig, GenerateConfig
from engine.stages.corpus import Hit
from engine.stages.filters import DOOM_EVERY, check_response, doomed_watch
from engine.stages.passages import consolidate
from engine.store import corpus, generation, open_store, projects
from engine.store.records import Chunk
from tests.helpers import make_project, run_engine

DOC = (
    "Alpha one two three four five six seven. Beta one two three four five six seven. "
    "Gamma one two three four five six seven. Delta one two three four five six seven. "
    "Epsilon one two three four five six seven."
)


def _chunk(cid: int, start: int, end: int, doc: int = 1, text: str | None = None) -> Chunk:
    return Chunk(cid, doc, cid, DOC[start:end] if text is None else text, start, end, 10, f"docs/d{doc}.md")


def _at(sentence: str) -> tuple[int, int]:
    start = DOC.index(sentence)
    return start, DOC.index(".", start) + 1


def test_overlapping_chunks_of_a_document_become_one_passage() -> None:
    a0, _ = _at("Alpha")
    _, b1 = _at("Beta")
    g0, g1 = _at("Gamma")
    b0, _ = _at("Beta")
    hits = [Hit(0.9, _chunk(2, b0, g1)), Hit(0.8, _chunk(1, a0, b1))]  # Alpha+Beta and Beta+Gamma overlap
    shown = consolidate(hits, "What does gamma do?")
    assert len(shown) == 1
    assert shown[0].text == DOC[a0:g1]  # each sentence once, in document order
    assert shown[0].source == "d1.md" and [h.chunk.id for h in shown[0].hits] == [1, 2]
    # touching chunks merge too; chunks of another document or far apart stay separate
    e0, e1 = _at("Epsilon")
    text = "Another document entirely, with more than eight words in it."
    other = Chunk(9, 2, 0, text, 0, len(text), 9, "docs/d2.md")
    shown = consolidate([Hit(0.9, _chunk(3, e0, e1)), Hit(0.8, other), Hit(0.7, _chunk(1, a0, b1))], "q")
    assert [s.source for s in shown] == ["d1.md", "d2.md", "d1.md"]  # by best score
    assert shown[0].text == DOC[e0:e1] and shown[2].text == DOC[a0:b1]
    assert g0 > b1  # (the fixture's sentences do not touch across the gap)


def test_a_chunk_the_task_shows_is_left_out_and_cut_from_its_neighbours() -> None:
    a0, _ = _at("Alpha")
    b0, b1 = _at("Beta")
    _, g1 = _at("Gamma")
    grounding = _chunk(1, a0, b1)  # the task's input is this chunk
    neighbour = _chunk(2, b0, g1)  # overlaps it by the Beta sentence
    task = f"Summarize the passage.\n{grounding.text}"
    shown = consolidate([Hit(0.95, grounding), Hit(0.6, neighbour)], task)
    assert [s.text for s in shown] == [DOC[_at("Gamma")[0] : g1]]  # only what the task does not show
    # a leftover shorter than MIN_WORDS is dropped; nothing left means no passage at all
    assert consolidate([Hit(0.9, grounding)], task) == []
    # offsets that do not match the text (an edited chunk): shown whole, never merged or cut
    odd = _chunk(3, b0, g1, text="A chunk whose text is not its span in the document at all.")
    assert [s.text for s in consolidate([Hit(0.9, grounding), Hit(0.5, odd)], task)] == [odd.text]


def test_an_answer_that_repeats_itself_is_ended_when_it_would_be_dropped() -> None:
    watch = doomed_watch(FilterConfig())
    fine = "Metformin lowers hepatic glucose output and is the usual first drug for type 2 diabetes. " * 1
    assert watch(fine, DOOM_EVERY) is None
    loop = "Cancer is treated with kinase inhibitors such as imatinib. " * 6
    assert check_response(loop, FilterConfig()).reason == "repetition"
    assert watch(loop, DOOM_EVERY) == len(loop)  # ended here: the rest would be wasted
    assert watch(loop, DOOM_EVERY + 1) is None  # looks only every DOOM_EVERY tokens ...
    assert watch(loop + "\n", DOOM_EVERY + 1) == len(loop) + 1  # ... and at line ends
    # an older generation's settings (filters off) never end an answer
    assert doomed_watch(FilterConfig(max_repeat_share=1.0, min_compression=0.0))(loop, DOOM_EVERY) is None


def test_a_stored_ss_v3_config_keeps_its_behaviour() -> None:
    old = GenerateConfig.model_validate({"template": "ss-v3", "seed": 1})
    assert not old.merge_passages and not old.stop_doomed and old.weights == "file"
    assert old.filters.max_repeat_share == 0.3  # ss-v3's own settings stay
    new = GenerateConfig()
    assert new.template == "ss-v4" and new.merge_passages and new.stop_doomed and new.weights == "auto"


def test_answer_prompts_never_repeat_the_grounding_passage(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "12", "--seed", "5")
    assert r.returncode == 0, r.stderr
    db = open_store()
    p = projects.get(db, "t")
    gen = generation.latest(db, p)
    assert gen.config["generate"]["weights"] == "file"  # the fake model is no GGUF
    chunks = corpus.get_chunks(db, corpus.chunk_ids(db, p))
    examples = generation.examples(db, p)
    assert len(examples) == 12
    for e in examples:
        shown = {q["chunk_id"] for q in e.passages}
        assert e.provenance["grounded_passage_id"] not in shown
        assert all(" ".join(chunks[c].text.split()) not in " ".join(e.input.split()) for c in shown)
        assert all(q["passage"] >= 1 for q in e.passages)  # the passage each chunk shows in
    # the same generation as ss-v3 showed them: the grounding chunk comes back as a passage
    make_project("old")
    r = run_engine("generate", "--project", "old", "--target", "12", "--seed", "5", "--no-merge-passages")
    assert r.returncode == 0, r.stderr
    old = generation.examples(db, projects.get(db, "old"))
    assert sum(e.provenance["grounded_passage_id"] in {q["chunk_id"] for q in e.passages} for e in old) >= 6


def test_weights_f16_needs_a_gguf_on_llama_cpp(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "2", "--weights", "f16")
    assert r.returncode == 2 and "--weights f16 is for a GGUF model" in r.stderr and "Traceback" not in r.stderr
    assert generation.latest(open_store(), projects.get(open_store(), "t")) is None  # nothing stored


@pytest.fixture()
def default_gguf() -> Path:
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    path = builtin_path(DEFAULT_MODEL)
    if path is None:
        pytest.skip("the embedded default model is not installed")
    return path


def test_an_f16_copy_is_made_once_and_holds_every_weight(home: Path, default_gguf: Path) -> None:
    import llama_cpp

    from engine.backends.f16_copy import auto_choice, f16_copy
    from engine.backends.gguf_meta import read_gguf_metadata

    assert auto_choice(default_gguf) == "f16"  # Q4_1, 135M weights: a 270 MB copy
    said: list[str] = []
    copy = f16_copy(default_gguf, 2, said.append)
    assert copy.is_relative_to(home) and len(said) == 1 and "F16 copy" in said[0]
    meta = read_gguf_metadata(copy, count_weights=True)
    assert meta["metadata"]["general.file_type"] == 1  # mostly F16
    assert meta["weights"] == read_gguf_metadata(default_gguf, count_weights=True)["weights"]
    assert auto_choice(copy) == "file"  # already F16
    stamp = copy.stat().st_mtime_ns
    assert f16_copy(default_gguf, 2, said.append) == copy and len(said) == 1 and copy.stat().st_mtime_ns == stamp
    assert not list(copy.parent.glob("*.partial"))
    # a copy cut short (a full disk, an edit) is never loaded: it is made again
    with copy.open("r+b") as fh:
        fh.truncate(copy.stat().st_size // 2)
    assert f16_copy(default_gguf, 2, said.append) == copy and len(said) == 2
    assert copy.stat().st_size >= 2 * meta["weights"]
    model = llama_cpp.llama_model_load_from_file(str(copy).encode(), llama_cpp.llama_model_default_params())
    try:
        assert llama_cpp.llama_model_n_params(model) == meta["weights"]
    finally:
        llama_cpp.llama_model_free(model)


def test_an_f16_copy_refused_for_lack_of_space_leaves_nothing(
    home: Path, default_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from engine.backends.f16_copy import cache_path, f16_copy
    from engine.errors import UserError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 50 << 20))
    with pytest.raises(UserError, match=r"MiB free, the F16 copy of .* needs \d+ MiB"):
        f16_copy(default_gguf, 2, lambda s: None)
    assert not cache_path(default_gguf).exists()
    assert not list(cache_path(default_gguf).parent.glob("*"))
