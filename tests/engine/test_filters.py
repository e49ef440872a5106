"""Near-duplicate decisions equal rouge-score's ROUGE-L; heuristics catch the junk the papers drop."""

from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer

from engine.spec.generate import FilterConfig
from engine.stages.filters import RougePool, check_response, check_task

WORDS = (
    "the a of in to and drug dose patient trial risk insulin Insulin blood pressure heart kidney liver "
    "explain describe list which what is are does reduce increase β-blocker COVID-19 p<0.05 2 mg/kg "
    "über naïve café -- ... ! ? (a) [1] x y z"
).split()


def _sentence(rng: random.Random, base: list[str] | None = None) -> str:
    if base and rng.random() < 0.6:  # a mutated copy: scores near the threshold
        words = list(base)
        for _ in range(rng.randint(0, 4)):
            op = rng.random()
            if op < 0.4 and words:
                words.pop(rng.randrange(len(words)))
            elif op < 0.8:
                words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
            elif words:
                words[rng.randrange(len(words))] = rng.choice(WORDS)
        return " ".join(words)
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14)))


def test_decisions_equal_rouge_score_on_random_pools() -> None:
    rng = random.Random(7)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    checked = near = 0
    for _trial in range(40):
        pool_texts: list[str] = []
        for _ in range(60):
            base = rng.choice(pool_texts).split() if pool_texts else None
            pool_texts.append(_sentence(rng, base))
        pool = RougePool()
        for i, t in enumerate(pool_texts):
            pool.add(t, f"#{i}")
        for _ in range(25):
            cand = _sentence(rng, rng.choice(pool_texts).split())
            ref = [scorer.score(t, cand)["rougeL"].fmeasure for t in pool_texts]
            best, label = pool.best(cand)
            assert best == max(ref)  # with no threshold every item is scored: the same float, not just close
            if max(ref) > 0:
                assert ref[int(label[1:])] == best
            for threshold in (0.3, 0.5, 0.7, 0.9):
                pruned, _ = pool.best(cand, threshold)
                assert (pruned > threshold) == any(r > threshold for r in ref)
                if max(ref) > threshold:
                    assert pruned == max(ref)
            near += 0.6 < best <= 0.8
            checked += 1
    assert checked == 1000 and near > 50  # the test exercises the neighbourhood of the threshold


def test_empty_and_punctuation_only_texts_score_zero() -> None:
    pool = RougePool()
    assert pool.best("anything") == (0.0, "")
    pool.add("!!! ...", "junk")
    pool.add("", "empty")
    assert pool.best("dose of insulin")[0] == 0.0
    assert pool.best("...")[0] == 0.0


def test_identical_instruction_scores_one() -> None:
    pool = RougePool()
    pool.add("Explain how metformin lowers glucose.", "seed #1")
    assert pool.best("explain HOW metformin lowers glucose")[0] == 1.0


CFG = FilterConfig()


@pytest.mark.parametrize(
    ("instruction", "input_text", "reason"),
    [
        ("Define sepsis.", "", "too_short"),
        ("word " * 151, "", "too_long"),
        ("Summarize the following clinical note please.", "word " * 401, "input_too_long"),
        ("Draw a diagram of the heart and its valves.", "", "needs_other_modality"),
        ("Look at the image and name the organ shown.", "", "needs_other_modality"),
        ("Plot the survival curve of the two arms.", "", "needs_other_modality"),
        ("Write a Python program that computes creatinine clearance.", "", "asks_for_program"),
        ("- Explain the mechanism of statins in brief.", "", "starts_with_punctuation"),
        ("Explain this \x07 thing about insulin dosing.", "", "non_printable"),
        ("1234 5678 9012 3456 7890 +++ ===", "", "non_text"),
        ("Объясните механизм действия метформина у пациентов.", "", "non_ascii"),
        ("Summarize the note about this patient.", "<patient note here>", "placeholder"),
        ("Explain how metformin lowers hepatic glucose output.", "", "equals_seed"),
    ],
)
def test_heuristics_name_the_reason(instruction: str, input_text: str, reason: str) -> None:
    seeds = {"explain how metformin lowers hepatic glucose output."}
    verdict = check_task(instruction, input_text, CFG, seeds)
    assert verdict.reason == reason and verdict.detail


@pytest.mark.parametrize(
    "instruction",
    [
        "Explain how beta blockers lower blood pressure in older adults.",
        "Is warfarin safe with a p < 0.05 interaction signal? Answer yes, no or maybe.",
        "Classify the file type of evidence: trial, cohort or case report.".replace("file type of ", ""),
        "Which β-blocker is preferred after myocardial infarction?",
    ],
)
def test_good_tasks_pass(instruction: str) -> None:
    assert check_task(instruction, "A 64-year-old man with angina.", CFG, set()).kept


def test_thresholds_come_from_the_config() -> None:
    strict = FilterConfig(min_words=8, max_words=10)
    assert check_task("Explain how insulin lowers glucose.", "", strict, set()).reason == "too_short"
    assert check_task("Explain how insulin lowers glucose in the liver and muscle.", "", strict, set()).kept


def test_response_checks() -> None:
    assert check_response("  \n").reason == "empty_response"
    assert check_response("%%%% 1234 $$$$ ####").reason == "non_text_response"
    assert check_response("Yes. Metformin lowers hepatic glucose output.").kept


def test_answer_filters_catch_loops_and_repetition_but_keep_prose() -> None:
    from engine.spec.generate import FilterConfig
    from engine.stages.filters import check_response, compression_ratio, repeat_share

    config = FilterConfig()
    sentence = "Metformin lowers hepatic glucose output in patients with type 2 diabetes. "
    loop = sentence * 20  # the shape of the 3,348-character answer a user found
    assert repeat_share(loop) > 0.9 and compression_ratio(loop) < 0.1
    verdict = check_response(loop, config)
    assert verdict.reason == "repetition" and "4-word sequences repeat" in verdict.detail
    # a loop of short varied tokens escapes the n-gram check but not the compression check
    numbers = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, " * 30
    assert check_response(numbers, config.model_copy(update={"max_repeat_share": 1.0})).reason in (
        "loop",
        "non_text_response",
    )
    prose = (
        "Metformin is a biguanide that lowers blood glucose mainly by reducing hepatic gluconeogenesis. "
        "It also modestly increases peripheral glucose uptake and does not stimulate insulin secretion, "
        "so it rarely causes hypoglycaemia on its own. Gastrointestinal upset is its most common side effect, "
        "and it should be avoided when kidney function is severely reduced because of the risk of lactic acidosis."
    )
    assert repeat_share(prose) < 0.05 and compression_ratio(prose) > 0.4
    assert check_response(prose, config).kept
    assert check_response(loop).kept  # without a config (older templates) only the basic checks run
    off = FilterConfig(max_repeat_share=1.0, min_compression=0.0)
    assert check_response(loop, off).kept


def test_off_task_answers_and_semantic_duplicates() -> None:
    from engine.spec.generate import FilterConfig
    from engine.stages.filters import SemanticPool, check_on_task
    from tests.fakes import HashEmbedder

    config = FilterConfig()
    assert check_on_task(0.02, "The capital of France is Paris, a large city.", config).reason == "off_task"
    assert check_on_task(0.5, "The capital of France is Paris, a large city.", config).kept
    assert check_on_task(0.0, "yes", config).kept  # a label answer is not compared with its task
    pool = SemanticPool(HashEmbedder())
    pool.add("List the side effects of metformin in older adults.", "seed #1")
    pool.add("Explain how beta blockers lower blood pressure.", "seed #2")
    cosine, label, _ = pool.best("List the side effects of metformin in older adults")
    assert label == "seed #1" and cosine > 0.99
    cosine, label, _ = pool.best("Name three causes of iron deficiency anaemia.")
    assert cosine < 0.5
