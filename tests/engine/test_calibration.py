"""Calibrated predictions on crafted label log-likelihoods whose right answers are known."""

from __future__ import annotations

import random

import pytest

from engine.eval_report import headline_text, table_rows
from engine.stages import calibration, scoring
from engine.stages.eval_data import EvalItem, EvalSet
from engine.stages.evaluate import content_free_set, summarize
from engine.store.evals import ItemScore

LABELS = ["yes", "no", "maybe"]


def _biased(gold: list[str], signal: float, bias: float, noise: float = 0.0, seed: int = 0) -> list[dict[str, float]]:
    """The gold label gets `signal` nats, "yes" gets `bias` nats more whatever the item says."""
    rng = random.Random(seed)
    out = []
    for g in gold:
        out.append(
            {
                label: -3.0 + (signal if label == g else 0.0) + (bias if label == "yes" else 0.0) + rng.gauss(0, noise)
                for label in LABELS
            }
        )
    return out


def _gold(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(["yes"] * 5 + ["no"] * 3 + ["maybe"] * 2) for _ in range(n)]


def test_a_known_bias_is_found_and_removed_by_cross_fitting() -> None:
    gold = _gold(60)
    found = _biased(gold, signal=1.0, bias=2.0)
    raw = [calibration.predict(lp, {}) for lp in found]
    assert set(raw) == {"yes"}  # the bias hides the signal entirely
    pred, biases = calibration.cross_fit(found, gold, [f"k{i}" for i in range(60)], LABELS)
    assert pred == gold  # the signal is clean, so the fitted offsets recover every label
    for b in biases:
        # "no" and "maybe" must gain more than the 2-nat bias less the 1-nat signal, and less than both
        assert b["yes"] == 0.0 and 1.0 < b["no"] < 3.0 and 1.0 < b["maybe"] < 3.0


def test_no_signal_leaves_the_bias_at_zero_where_nothing_improves() -> None:
    gold = ["yes"] * 10
    found = [{"yes": -1.0, "no": -2.0, "maybe": -3.0}] * 10
    assert calibration.fit_bias(found, gold, LABELS) == {"yes": 0.0, "no": 0.0, "maybe": 0.0}


def test_an_items_own_label_never_sets_the_offset_it_is_scored_with() -> None:
    gold = _gold(80, seed=3)
    keys = [f"item-{i}" for i in range(80)]
    found = _biased(gold, signal=0.8, bias=1.5, noise=0.6, seed=4)
    pred, _ = calibration.cross_fit(found, gold, keys, LABELS)
    folds = [calibration.fold(k) for k in keys]
    assert 20 < sum(folds) < 60  # both folds are used
    # relabel every fold-0 item: fold-0 predictions (fitted on fold 1) must not move
    flipped = [("no" if g == "yes" else "yes") if f == 0 else g for g, f in zip(gold, folds)]
    again, _ = calibration.cross_fit(found, flipped, keys, LABELS)
    assert [p for p, f in zip(again, folds) if f == 0] == [p for p, f in zip(pred, folds) if f == 0]
    assert [p for p, f in zip(again, folds) if f == 1] != [p for p, f in zip(pred, folds) if f == 1]
    assert scoring.macro_f1(gold, pred, LABELS) > scoring.macro_f1(
        gold, [calibration.predict(x, {}) for x in found], LABELS
    )


def test_contextual_calibration_divides_by_the_content_free_prior() -> None:
    # content-free inputs: "yes" 0.8, "no" 0.1, "maybe" 0.1 (as log-likelihoods, any common offset)
    import math

    cf = [{"yes": math.log(0.8) - 5, "no": math.log(0.1) - 5, "maybe": math.log(0.1) - 5}] * 3
    prior = calibration.content_free_prior(cf)
    assert prior == pytest.approx({"yes": 0.8, "no": 0.1, "maybe": 0.1})
    # p(yes)=0.6, p(no)=0.3, p(maybe)=0.1 -> divided by the prior: 0.75, 3.0, 1.0 -> "no"
    item = {"yes": math.log(0.6), "no": math.log(0.3), "maybe": math.log(0.1)}
    assert calibration.contextual([item], prior) == ["no"]
    # with a flat prior nothing changes
    flat = calibration.content_free_prior([{"yes": 0.0, "no": 0.0, "maybe": 0.0}])
    assert calibration.contextual([item], flat) == ["yes"]


def _scores(model: str, ev: EvalSet, found: list[dict[str, float]]) -> list[ItemScore]:
    out = []
    for item, lp in zip(ev.items, found):
        pred = calibration.predict(lp, {})
        out.append(ItemScore(ev.name, model, item.key, item.output, pred, float(pred == item.output), {"logprobs": lp}))
    return out


def test_summary_reports_raw_and_calibrated_figures_with_counts_and_marks_small_sets() -> None:
    gold = _gold(40, seed=5)
    big = EvalSet(
        "big", tuple(EvalItem(f"b{i}", "q", "", g, tuple(LABELS)) for i, g in enumerate(gold)), labels=tuple(LABELS)
    )
    small = EvalSet("small", big.items[:10], labels=tuple(LABELS))
    stored = _scores("base", big, _biased(gold, 0.3, 3.0, 0.4, seed=6)) + _scores(
        "expert", big, _biased(gold, 1.2, 3.0, 0.4, seed=7)
    )
    stored += [
        ItemScore(small.name, s.model, s.item_key, s.gold, s.prediction, s.score, s.detail)
        for s in stored
        if s.item_key in {i.key for i in small.items}
    ]
    cf = {"yes": -0.2, "no": -2.5, "maybe": -2.5}
    stored += [
        ItemScore(content_free_set(big), m, f"cf-{k}", "yes", "yes", 1.0, {"logprobs": cf})
        for m in ("base", "expert")
        for k in range(3)
    ]
    results = summarize([big, small], ["base", "expert"], stored)
    entry_big, entry_small = results["datasets"]
    assert not entry_big["too_small"] and entry_small["too_small"]
    expert = entry_big["models"]["expert"]
    assert expert["predicted"] == {"yes": 40}  # the raw arg-max is all bias
    assert expert["macro_f1_xfit"] > expert["macro_f1"] and expert["macro_f1_cc"] > expert["macro_f1"]
    assert sum(expert["predicted_xfit"].values()) == 40 and len(expert["predicted_xfit"]) >= 2
    # the contextual set is not in "small" (no content-free scores stored for it): raw and cross-fit only
    assert "macro_f1_cc" not in entry_small["models"]["expert"] and "macro_f1_xfit" in entry_small["models"]["expert"]
    d = entry_big["difference"]["macro_f1_xfit"]
    assert d[1] <= d[0] <= d[2]
    # the headline and the mean skip the small set
    assert results["headline"]["dataset"] == "big" and results["domain_mean_difference"] == pytest.approx(d[0])
    assert "big (n=40) macro_f1 (cross-fit bias)" in headline_text(results)
    _, rows = table_rows(results)
    metrics = [r[2] for r in rows if r[0] == "big"]
    assert metrics[:6] == [
        "accuracy",
        "macro_f1",
        "accuracy (cross-fit bias)",
        "macro_f1 (cross-fit bias)",
        "accuracy (contextual)",
        "macro_f1 (contextual)",
    ]
    predicted = next(r for r in rows if r[0] == "big" and r[2] == "predicted")
    assert predicted[4] == "yes 40 no 0 maybe 0" and predicted[-2].startswith("gold: yes ")
    assert any(r[0] == "small [too small]" for r in rows)


def test_no_headline_without_a_set_of_twenty() -> None:
    gold = _gold(8)
    ev = EvalSet(
        "tiny", tuple(EvalItem(f"t{i}", "q", "", g, tuple(LABELS)) for i, g in enumerate(gold)), labels=tuple(LABELS)
    )
    stored = _scores("base", ev, _biased(gold, 1, 0)) + _scores("expert", ev, _biased(gold, 1, 0))
    results = summarize([ev], ["base", "expert"], stored)
    assert "headline" not in results and "domain_mean_difference" not in results
    assert headline_text(results).startswith("no in-domain set of 20")
