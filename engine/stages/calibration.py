"""Calibrated label predictions from stored label log-likelihoods (pure; no model is involved).

A small base model prefers some labels whatever it reads (SmolLM2 says "yes" by 1-2 nats), so the
raw arg-max measures that bias more than the model's knowledge. Two corrections, both reported
beside the raw scores:

- cross-fit bias: a per-label offset added to the log-likelihoods, fitted to maximise macro-F1 on
  one half of the set and applied to the other half (2 folds by a hash of the item key), so no
  item's own label ever sets the offset it is scored with;
- contextual calibration (Zhao et al. 2021): the label probabilities the model gives to
  content-free inputs ("N/A", "", "[MASK]") estimate its prior; each item's probabilities are
  divided by that prior before the arg-max.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from engine.stages.scoring import macro_f1

CONTENT_FREE = ("N/A", "", "[MASK]")
STEPS = tuple(round(-6 + 0.25 * i, 2) for i in range(49))  # offsets tried per label, -6 .. +6 nats
ROUNDS = 3


def fold(key: str) -> int:
    """0 or 1, fixed by the item key (independent of the set's order)."""
    return hashlib.sha256(key.encode()).digest()[0] & 1


def predict(logprobs: Mapping[str, float], bias: Mapping[str, float]) -> str:
    """The label with the highest log-likelihood plus offset (first label on ties)."""
    labels = list(logprobs)
    return max(labels, key=lambda label: (logprobs[label] + bias.get(label, 0.0), -labels.index(label)))


def fit_bias(found: Sequence[Mapping[str, float]], gold: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Per-label offsets that maximise macro-F1 on these items (coordinate ascent over a grid).

    A change is taken only when it raises macro-F1 (then accuracy), so with no signal the offsets
    stay at zero; the first label is the reference and stays at zero.
    """
    bias = {label: 0.0 for label in labels}
    if not found:
        return bias

    def quality(b: Mapping[str, float]) -> tuple[float, float]:
        pred = [predict(lp, b) for lp in found]
        hits = sum(p == g for p, g in zip(pred, gold)) / len(gold)
        return macro_f1(gold, pred, labels), hits

    best = quality(bias)
    for _ in range(ROUNDS):
        moved = False
        for label in labels[1:]:
            for step in STEPS:
                trial = {**bias, label: step}
                got = quality(trial)
                closer = got == best and abs(step) < abs(bias[label])
                if got > best or closer:
                    bias, best, moved = trial, got, True
        if not moved:
            break
    return bias


def cross_fit(
    found: Sequence[Mapping[str, float]], gold: Sequence[str], keys: Sequence[str], labels: Sequence[str]
) -> tuple[list[str], list[dict[str, float]]]:
    """Predictions with offsets fitted on the other fold; the two fitted offset sets (fold 0, fold 1)."""
    folds = [fold(k) for k in keys]
    biases = []
    for f in (0, 1):
        other = [i for i, x in enumerate(folds) if x != f]
        biases.append(fit_bias([found[i] for i in other], [gold[i] for i in other], labels))
    return [predict(lp, biases[f]) for lp, f in zip(found, folds)], biases


def _probabilities(logprobs: Mapping[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    weights = {label: math.exp(v - top) for label, v in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def content_free_prior(found: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean label probabilities over the content-free inputs."""
    if not found:
        return {}
    probs = [_probabilities(lp) for lp in found]
    labels = list(found[0])
    return {label: sum(p.get(label, 0.0) for p in probs) / len(probs) for label in labels}


def contextual(found: Sequence[Mapping[str, float]], prior: Mapping[str, float]) -> list[str]:
    """Arg-max of p(label | item) / p(label | content-free), over each item's own labels."""
    floor = 1e-12
    offsets = {label: -math.log(max(p, floor)) for label, p in prior.items()}
    return [predict(lp, offsets) for lp in found]
