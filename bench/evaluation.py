"""Evaluation benchmark: label scoring items/min, one item at a time (today's path before batching)
against the batched scorer (many items per decode pass, the shared few-shot prefix evaluated once).

Both score the same PubMedQA items (../shared/data/pubmedqa/pqal_dev.json, read in place) with the
embedded default, in the prompt the product uses: the old path with per-item demonstrations and a
fresh cache per item (bench/legacy_llamacpp.SerialScorer), the new one with one shared set. The
predictions of both are compared too. The last line is `speedup items/min: X.XXx` (goal: 2x).

    .venv/bin/python bench/evaluation.py [--items 48] [--shots 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--shots", type=int, default=3)
    args = ap.parse_args()
    from bench.legacy_llamacpp import SerialScorer
    from engine.backends.runtimes.llamacpp import LlamaCppScorer
    from engine.backends.types import ModelFile
    from engine.cpu import free_cores
    from engine.stages.eval_data import demonstrations, load_pubmedqa
    from engine.stages.evaluate import FLUSH_EVERY, prompt_for
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None and DATA.is_file(), "needs the embedded default and ../shared/data/pubmedqa"
    every = list(load_pubmedqa(DATA).items)
    pool, items = every[:20], every[20 : 20 + args.items]
    threads = free_cores()
    model = ModelFile(DEFAULT_MODEL, "gguf", gguf)
    print(f"{len(items)} PubMedQA items, {args.shots}-shot, {threads} threads, load {os.getloadavg()[0]:.2f}")

    def per_item(item):  # type: ignore[no-untyped-def]  # the old per-item demonstrations
        candidates = [d for d in pool if d.key != item.key]
        return random.Random(f"0:{item.key}").sample(candidates, min(args.shots, len(candidates)))

    old = SerialScorer(model, threads)
    t0 = time.perf_counter()
    before = [old.label_logprobs(prompt_for(i, per_item(i)), list(i.labels)) for i in items]
    old_s = time.perf_counter() - t0
    old.close()

    new = LlamaCppScorer(model, threads)
    prompts = [prompt_for(i, demonstrations(pool, i, args.shots)) for i in items]
    t0 = time.perf_counter()
    after = []
    for start in range(0, len(items), FLUSH_EVERY):
        chunk = slice(start, start + FLUSH_EVERY)
        after += new.label_logprobs_many(prompts[chunk], [list(i.labels) for i in items[chunk]])
    new_s = time.perf_counter() - t0
    saved = new.prefix_tokens_saved
    # the same prompts one at a time on the new scorer: batching must not change the scores
    single = [new.label_logprobs(p, list(i.labels)) for p, i in zip(prompts[:8], items[:8])]
    new.close()
    drift = max(abs(a - b) for x, y in zip(single, after[:8]) for a, b in zip(x, y))
    pick = lambda lps, item: item.labels[max(range(len(lps)), key=lps.__getitem__)]  # noqa: E731
    acc = [sum(pick(lp, i) == i.output for lp, i in zip(s, items)) / len(items) for s in (before, after)]
    print(f"before: {60 * len(items) / old_s:8.1f} items/min ({old_s:.1f}s), accuracy {acc[0]:.3f}")
    print(
        f"after:  {60 * len(items) / new_s:8.1f} items/min ({new_s:.1f}s), accuracy {acc[1]:.3f}, "
        f"prompt tokens saved by the shared prefix {saved}"
    )
    print(f"largest log-likelihood change, batched vs one at a time (same prompts): {drift:.2e}")
    print(f"speedup items/min: {old_s / new_s:.2f}x")


if __name__ == "__main__":
    main()
