"""Scoring functions against hand-computed cases, and label polarity through the item scorer."""

from __future__ import annotations

import random

import pytest

from engine.eval_report import table_rows
from engine.stages import scoring
from engine.stages.eval_data import EvalItem, EvalSet
from engine.stages.evaluate import score_item, summarize

GOLD = ["yes", "yes", "no", "maybe"]
PRED = ["yes", "no", "no", "no"]
LABELS = ["yes", "no", "maybe"]


def test_accuracy_and_macro_f1_by_hand() -> None:
    assert scoring.accuracy(GOLD, PRED) == 0.5
    # yes: tp1 fp0 fn1 -> 2/3; no: tp1 fp2 fn0 -> 1/2; maybe: tp0 -> 0
    assert scoring.macro_f1(GOLD, PRED, LABELS) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert scoring.macro_f1(GOLD, GOLD, LABELS) == 1.0
    assert scoring.accuracy([], []) == 0.0


def test_baselines_by_hand_and_by_simulation() -> None:
    b = scoring.baselines(GOLD, LABELS)
    assert b["majority_label"] == "yes" and b["majority_accuracy"] == 0.5
    assert b["majority_macro_f1"] == pytest.approx((2 / 3) / 3)  # yes: tp2 fp2 fn0
    assert b["chance_accuracy"] == pytest.approx(1 / 3)
    assert b["chance_macro_f1"] == pytest.approx((0.4 + 2 / 7 + 2 / 7) / 3)
    # the uniform-chance figure is what random guessing gets on a large set
    rng = random.Random(0)
    gold = [rng.choice(["yes"] * 5 + ["no"] * 3 + ["maybe"] * 2) for _ in range(20000)]
    guessed = [rng.choice(LABELS) for _ in gold]
    sim = scoring.baselines(gold, LABELS)
    assert scoring.macro_f1(gold, guessed, LABELS) == pytest.approx(sim["chance_macro_f1"], abs=0.01)
    assert scoring.accuracy(gold, guessed) == pytest.approx(sim["chance_accuracy"], abs=0.01)


def test_rouge_l_and_exact_match() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    assert scoring.rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert scoring.rouge_l("", "anything") == 0.0 and scoring.rouge_l("x y", "a b") == 0.0
    reference = RougeScorer(["rougeL"])
    rng = random.Random(1)
    words = "insulin lowers glucose the liver and kidney blood pressure drug".split()
    for _ in range(50):
        a = " ".join(rng.choices(words, k=rng.randint(1, 12)))
        b = " ".join(rng.choices(words, k=rng.randint(1, 12)))
        assert scoring.rouge_l(a, b) == pytest.approx(reference.score(b, a)["rougeL"].fmeasure)
    assert scoring.exact_match("The Yes.", "yes") == 1.0 and scoring.exact_match("yes, sure", "yes") == 0.0


def test_bootstrap_intervals() -> None:
    assert scoring.bootstrap_mean([1.0] * 30) == (1.0, 1.0)
    values = [1.0] * 60 + [0.0] * 40
    lo, hi = scoring.bootstrap_mean(values)
    assert lo < 0.6 < hi and hi - lo < 0.25 and scoring.bootstrap_mean(values) == (lo, hi)  # seeded
    assert scoring.paired_difference(values, values) == (0.0, 0.0, 0.0)
    better = [1.0] * 100
    d, dlo, dhi = scoring.paired_difference(values, better)
    assert d == pytest.approx(0.4) and 0 < dlo <= d <= dhi
    point, flo, fhi = scoring.paired_macro_f1_difference(GOLD * 10, PRED * 10, GOLD * 10, LABELS)
    assert point == pytest.approx(1 - scoring.macro_f1(GOLD, PRED, LABELS)) and flo <= point <= fhi


class Leaning:
    """A fake scorer that prefers one label by a fixed margin (to check label polarity)."""

    def __init__(self, name: str, favourite: str) -> None:
        self.name, self.favourite = name, favourite

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        return [-0.1 if label == self.favourite else -3.0 for label in labels]

    def generate(self, prompt: str, max_tokens: int) -> str:
        return "the cat is on the mat"


def _set() -> EvalSet:
    items = tuple(EvalItem(f"i{n}", f"q{n}", "", g, ("yes", "no", "maybe")) for n, g in enumerate(GOLD * 5))
    return EvalSet("toy", items, labels=("yes", "no", "maybe"))


def test_label_polarity_through_the_item_scorer() -> None:
    ev = _set()
    for favourite in ("yes", "no", "maybe"):
        scored = [score_item(Leaning("m", favourite), ev, i, "p", 8) for i in ev.items]
        assert {s.prediction for s in scored} == {favourite}
        assert sum(s.score for s in scored) / len(scored) == GOLD.count(favourite) / len(GOLD)
    # the label order in the item does not change which label wins
    flipped = EvalItem("f", "q", "", "no", ("maybe", "no", "yes"))
    assert score_item(Leaning("m", "no"), ev, flipped, "p", 8).prediction == "no"
    free = EvalSet("free", (EvalItem("a", "q", "", "the cat sat on the mat"),))
    s = score_item(Leaning("m", "yes"), free, free.items[0], "p", 8)
    assert s.score == pytest.approx(5 / 6) and s.detail["exact_match"] == 0.0


def test_model_specs_name_their_expert() -> None:
    from engine.stages.evaluate import adapter_of

    assert [adapter_of(s) for s in ("base", "hf:base", "v2", "v2:q4_k_m", "base+v2", "hf:v2")] == [
        None,
        None,
        "v2",
        "v2",
        "v2",
        "v2",
    ]


def test_summary_table_compares_base_and_expert() -> None:
    ev = _set()
    stored = [score_item(Leaning("base", "no"), ev, i, "p", 8) for i in ev.items]
    stored += [score_item(Leaning("expert", "yes"), ev, i, "p", 8) for i in ev.items]
    results = summarize([ev], ["base", "expert"], stored)
    entry = results["datasets"][0]
    assert entry["models"]["base"]["accuracy"] == 0.25 and entry["models"]["expert"]["accuracy"] == 0.5
    assert entry["difference"]["accuracy"][0] == pytest.approx(0.25)
    assert entry["models"]["expert"]["predicted"] == {"yes": 20}
    # the headline is the calibrated (cross-fit) macro-F1, here of the only set (20 items: not too small)
    assert not entry["too_small"] and results["headline"]["metric"] == "macro_f1_xfit"
    assert results["domain_mean_difference"] == pytest.approx(entry["difference"]["macro_f1_xfit"][0])
    header, rows = table_rows(results)
    assert header[3:6] == ["base", "expert", "expert − base"] and rows[0][2] == "accuracy"
    assert rows[0][3].startswith("0.250 [") and rows[0][5].startswith("+0.250 [") and rows[0][6] == "0.500"
