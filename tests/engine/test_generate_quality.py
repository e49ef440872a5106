"""ss-v3 generation with the fake generator: grounded tasks, the passage floor, self-judging, round 2
on the same tasks, chat style refused for a model without a template, and older configs unchanged."""

from __future__ import annotations

from pathlib import Path

from engine.spec.generate import GenerateConfig
from engine.store import corpus, generation, open_store, projects
from tests.helpers import make_project, run_engine


def _latest(db):  # type: ignore[no-untyped-def]
    return generation.latest(db, projects.get(db, "t"))


def test_grounded_tasks_take_their_input_from_the_corpus(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "12", "--seed", "5")
    assert r.returncode == 0, r.stderr
    db = open_store()
    gen = _latest(db)
    assert gen.config["generate"]["grounded"] == "on"  # auto: the project has a corpus
    assert gen.config["generate"]["prompt_style"] == "completion"  # the fake model has no chat template
    p = projects.get(db, "t")
    chunks = corpus.get_chunks(db, corpus.chunk_ids(db, p))
    by_text = {" ".join(c.text.split()): cid for cid, c in chunks.items()}
    examples = generation.examples(db, p)
    assert len(examples) == 12
    for e in examples:
        cid = e.provenance["grounded_passage_id"]
        assert by_text[" ".join(e.input.split())] == cid  # the input is that passage, word for word
    prompts = db.execute(
        "SELECT count(*), count(DISTINCT passage_id) FROM gen_prompts WHERE generation_id = ?", [gen.id]
    ).fetchone()
    assert prompts[0] == prompts[1]  # one passage per prompt, none reused in a run this short
    # resuming with "auto" (what a form sends) keeps what the generation settled on
    r = run_engine("generate", "--project", "t", "--resume", str(gen.id), "--target", "14", "--grounded", "auto")
    assert r.returncode == 0, r.stderr
    assert generation.count_examples(db, gen.id) == 14 and _latest(db).config["generate"]["grounded"] == "on"
    # --grounded on without a corpus is refused before anything is stored
    make_project("bare", corpus=False)
    r = run_engine("generate", "--project", "bare", "--target", "3", "--grounded", "on", "--no-retrieval")
    assert r.returncode == 2 and "grounded tasks need a corpus" in r.stderr and "Traceback" not in r.stderr


def test_passage_floor_and_self_judging(home: Path) -> None:
    make_project()
    r = run_engine(
        "generate",
        "--project",
        "t",
        "--target",
        "16",
        "--seed",
        "2",
        "--grounded",
        "off",
        "--retrieval-floor",
        "0.999",
        "--judge",
        "--judge-threshold",
        "2.6",
    )
    assert r.returncode == 0, r.stderr
    db = open_store()
    gen = _latest(db)
    examples = generation.examples(db, projects.get(db, "t"))
    assert examples and all(e.passages == [] for e in examples)  # nothing reaches the floor
    assert all(e.output.startswith("According to general knowledge") for e in examples if e.task_type != "yes_no_qa")
    grades = [e.provenance["judge_grade"] for e in examples]
    assert all(g >= 2.6 for g in grades)
    low = [c for c in generation.candidates(db, gen.id, "dropped") if c.reason == "low_grade"]
    assert low and all(c.detail.startswith("expected grade ") for c in low)
    assert len(examples) + len(low) >= 16
    listing = run_engine("examples", "list", "--project", "t", "--dropped")
    assert "low_grade" in listing.stdout and "expected grade" in listing.stdout


def test_answers_the_filters_drop_are_made_up_by_more_tasks(home: Path) -> None:
    make_project()
    r = run_engine(
        "generate",
        "--project",
        "t",
        "--target",
        "10",
        "--seed",
        "6",
        "--grounded",
        "off",
        "--min-answer-similarity",
        "0.2",
    )
    assert r.returncode == 0, r.stderr
    assert "brainstorming" in r.stderr and "more tasks" in r.stderr
    db = open_store()
    gen = _latest(db)
    off = [c for c in generation.candidates(db, gen.id, "dropped") if c.reason == "off_task"]
    assert off and all(c.detail.startswith("cosine ") for c in off)
    assert generation.count_examples(db, gen.id) == 10 and gen.phase == "done"  # the target holds


def test_round_two_answers_the_same_tasks_again(home: Path) -> None:
    make_project()
    assert run_engine("generate", "--project", "t", "--target", "6", "--seed", "4", "--grounded", "off").returncode == 0
    db = open_store()
    first = _latest(db)
    r = run_engine("generate", "--project", "t", "--new", "--tasks-from", str(first.id), "--seed", "9")
    assert r.returncode == 0, r.stderr
    second = _latest(db)
    assert second.id != first.id and second.phase == "done"
    tasks = lambda g: [
        (c.prompt_idx, c.item_idx, c.instruction, c.input, c.status) for c in generation.candidates(db, g.id)
    ]  # noqa: E731
    assert tasks(second) == tasks(first)
    assert generation.count_examples(db, second.id) == generation.count_examples(db, first.id)
    # an unknown expert, or another project's generation, is refused with a clear message
    r = run_engine("generate", "--project", "t", "--new", "--tasks-from", str(first.id), "--respond-with", "nobody")
    assert r.returncode == 2 and "nobody" in r.stderr and "Traceback" not in r.stderr
    make_project("other")
    r = run_engine("generate", "--project", "other", "--new", "--tasks-from", str(first.id))
    assert r.returncode == 2 and "not another generation of other" in r.stderr


def test_chat_style_needs_a_template(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "3", "--prompt-style", "chat")
    assert r.returncode == 2 and "has no chat template" in r.stderr and "--prompt-style completion" in r.stderr


def test_balanced_demonstrations_spread_over_task_types() -> None:
    import random

    from engine.stages.gen_setup import balanced_sample
    from engine.store.records import Seed

    pool = [Seed(i, 1, f"q{i}", "", "yes", "yes_no_qa") for i in range(100)]
    pool += [Seed(100 + i, 1, f"t{i}", "", "x", kind) for i, kind in enumerate(["ner", "summarization", "open_qa"])]
    for trial in range(20):
        picked = balanced_sample(pool, 4, random.Random(trial))
        assert len(picked) == 4 and len({s.task_type for s in picked}) == 4  # one of each type
        assert len({s.id for s in picked}) == 4
    assert len(balanced_sample(pool, 200, random.Random(0))) == len(pool)


def test_a_stored_ss_v2_config_keeps_its_behaviour() -> None:
    old = GenerateConfig.model_validate({"template": "ss-v2", "seed": 1, "filters": {"rouge_threshold": 0.6}})
    assert old.grounded == "off" and old.prompt_style == "completion" and old.retrieval_floor == 0.0
    assert old.filters.rouge_threshold == 0.6 and old.filters.semantic_threshold == 0.0
    assert old.filters.max_repeat_share == 1.0 and old.filters.min_answer_similarity == -1.0
    new = GenerateConfig()
    assert new.template == "ss-v4" and new.grounded == "auto" and new.filters.semantic_threshold == 0.9


def test_a_grounded_completion_ends_with_its_instruction_line() -> None:
    from engine.stages.brainstorm_budget import grounded_watch

    # the prompt ends at "Instruction:", so the completion's first line is the instruction
    assert grounded_watch(" Does the drug work?", 12) is None  # the line is still open
    text = " Does the drug work?\nAnswer: yes, and then the model rambles"
    assert text[: grounded_watch(text, 20)] == " Does the drug work?\n"
    assert grounded_watch("\n\n", 2) is None and grounded_watch("", 0) is None


def test_label_bias_is_fitted_on_a_capped_set_balanced_across_labels() -> None:
    from engine.stages.label_answers import calibration_set, label_types
    from engine.store.records import Seed

    answers = ["yes"] * 60 + ["no"] * 25 + ["maybe"] * 5
    pool = [Seed(i, 1, f"q{i}", "abstract", a, "yes_no_qa") for i, a in enumerate(answers)]
    pool += [Seed(100 + i, 1, f"s{i}", "text", "a long free answer", "summarization") for i in range(10)]
    labels = label_types(pool)["yes_no_qa"]
    assert labels == ["maybe", "no", "yes"] and "summarization" not in label_types(pool)
    picked = calibration_set(pool, "yes_no_qa", labels, 24, seed=3)
    by_label = {a: sum(s.output == a for s in picked) for a in labels}
    assert len(picked) == 24 and by_label == {"maybe": 5, "no": 10, "yes": 9}  # the rare label is all in
    assert picked == calibration_set(pool, "yes_no_qa", labels, 24, seed=3)  # fixed for a resume
    assert picked != calibration_set(pool, "yes_no_qa", labels, 24, seed=4)
    assert len(calibration_set(pool, "yes_no_qa", labels, 0, seed=3)) == 90  # 0: every seed of the type
    assert {s.task_type for s in calibration_set(pool, "yes_no_qa", labels, 500, seed=3)} == {"yes_no_qa"}
