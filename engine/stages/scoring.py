"""Scores and their uncertainty: accuracy, macro-F1, chance baselines, ROUGE-L, exact match, bootstrap.

Pure functions over lists (numpy for the resampling); no model is involved here.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_ROUNDS = 1000
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Mean over `labels` of each label's F1 (a label never predicted nor present scores 0)."""
    if not labels:
        return 0.0
    total = 0.0
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / len(labels)


def baselines(gold: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """What answering without reading gets: always the majority label, or a uniform random label.

    Uniform chance is the expectation: accuracy 1/K; a label with prevalence p gets precision p
    and recall 1/K, so F1 = 2p(1/K)/(p + 1/K).
    """
    k = len(labels)
    counts = Counter(gold)
    n = len(gold)
    if not n or not k:
        return {"majority_accuracy": 0.0, "majority_macro_f1": 0.0, "chance_accuracy": 0.0, "chance_macro_f1": 0.0}
    majority = max(labels, key=lambda label: (counts[label], -labels.index(label)))
    chance_f1 = 0.0
    for label in labels:
        p = counts[label] / n
        chance_f1 += 2 * p * (1 / k) / (p + 1 / k) if p else 0.0
    return {
        "majority_label": majority,  # type: ignore[dict-item]
        "majority_accuracy": counts[majority] / n,
        "majority_macro_f1": macro_f1(gold, [majority] * n, labels),
        "chance_accuracy": 1 / k,
        "chance_macro_f1": chance_f1 / k,
    }


def normalize_answer(text: str) -> str:
    """Lowercase, no punctuation or articles, single spaces (the usual exact-match normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, ref: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(ref))


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure on rouge-score's tokens (lowercased alphanumerics), as the filters use."""
    from rapidfuzz.distance import LCSseq
    from rouge_score.tokenize import tokenize

    a, b = tokenize(pred, None), tokenize(ref, None)
    if not a or not b:
        return 0.0
    codes: dict[str, str] = {}
    ea = "".join(codes.setdefault(t, chr(0x100 + len(codes))) for t in a)
    eb = "".join(codes.setdefault(t, chr(0x100 + len(codes))) for t in b)
    lcs = LCSseq.similarity(ea, eb)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _resamples(n: int, seed: int, rounds: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def bootstrap_mean(values: Sequence[float], seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """95% percentile interval of the mean of per-item scores."""
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return 0.0, 0.0
    means = arr[_resamples(len(arr), seed, rounds)].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bootstrap_macro_f1(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS
) -> tuple[float, float]:
    values = _macro_f1_resampled(gold, [pred], labels, seed, rounds)[0]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _macro_f1_resampled(
    gold: Sequence[str], preds: Sequence[Sequence[str]], labels: Sequence[str], seed: int, rounds: int
) -> list[np.ndarray]:
    """Macro-F1 on the same resamples for each prediction list (paired when there are two)."""
    if not gold:
        return [np.zeros(1) for _ in preds]
    index = {label: i for i, label in enumerate(labels)}
    g = np.array([index.get(x, -1) for x in gold])
    draws = _resamples(len(gold), seed, rounds)
    out = []
    for pred in preds:
        p = np.array([index.get(x, -1) for x in pred])
        gs, ps = g[draws], p[draws]
        total = np.zeros(rounds)
        for k in range(len(labels)):
            tp = ((gs == k) & (ps == k)).sum(axis=1)
            fp = ((gs != k) & (ps == k)).sum(axis=1)
            fn = ((gs == k) & (ps != k)).sum(axis=1)
            denom = 2 * tp + fp + fn
            total += np.where(tp > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        out.append(total / len(labels))
    return out


def paired_difference(
    a: Sequence[float], b: Sequence[float], seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS
) -> tuple[float, float, float]:
    """Mean of b - a over the same items, with a 95% paired-bootstrap interval."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if not len(diff):
        return 0.0, 0.0, 0.0
    lo, hi = bootstrap_mean(diff.tolist(), seed, rounds)
    return float(diff.mean()), lo, hi


def paired_macro_f1_difference(
    gold: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    labels: Sequence[str],
    seed: int = 0,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> tuple[float, float, float]:
    fa, fb = _macro_f1_resampled(gold, [pred_a, pred_b], labels, seed, rounds)
    diff = fb - fa
    point = macro_f1(gold, pred_b, labels) - macro_f1(gold, pred_a, labels)
    return point, float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))
