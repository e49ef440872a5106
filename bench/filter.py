"""Near-duplicate filter benchmark: our ROUGE-L pool against a rouge-score reference, same decisions.

The reference is how Self-Instruct and Alpaca filter: the pool is tokenized once with rouge-score's
tokenizer and every (candidate, pool item) pair is scored with rouge-score's own LCS (`_score_lcs`),
single-threaded. Ours encodes tokens as characters, rules out pool items whose shared token count
cannot reach the threshold (an upper bound on the LCS) and takes exact LCS lengths for the rest from
rapidfuzz, also on one thread; "identical" means the same drop decisions and the same score for
every dropped candidate. Pools of 1K, 5K and 20K instructions built from the shipped seeds' vocabulary, with some
candidates mutated from pool items so that both sides of the 0.7 threshold occur.

    .venv/bin/python bench/filter.py [--candidates 25] [--sizes 1000 5000 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def vocabulary() -> list[str]:
    words: list[str] = []
    for name in ("biomedicine.jsonl", "finance.jsonl"):
        for line in (ROOT / "seeds" / name).read_text().splitlines():
            row = json.loads(line)
            words += re.findall(r"[A-Za-z][A-Za-z-]+", row["instruction"] + " " + row["input"])
    return sorted(set(words))


def instruction(rng: random.Random, vocab: list[str], base: str | None = None) -> str:
    if base is not None:
        words = base.split()
        for _ in range(rng.randint(0, 5)):
            op = rng.random()
            if op < 0.35 and len(words) > 3:
                words.pop(rng.randrange(len(words)))
            elif op < 0.7:
                words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
            else:
                words[rng.randrange(len(words))] = rng.choice(vocab)
        return " ".join(words)
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 24))) + "."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=25)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--threshold", type=float, default=0.7)
    args = ap.parse_args()

    from rouge_score import rouge_scorer
    from rouge_score.tokenize import tokenize

    from engine.stages.filters import RougePool

    rng = random.Random(0)
    vocab = vocabulary()
    print(f"vocabulary {len(vocab)} words; {args.candidates} candidates per pool size; threshold {args.threshold}")
    print(f"{'pool':>6} {'reference ms/cand':>18} {'ours ms/cand':>13} {'speedup':>9} {'dropped':>8} {'decisions':>10}")
    for size in args.sizes:
        pool_texts = [instruction(rng, vocab) for _ in range(size)]
        candidates = [
            instruction(rng, vocab, rng.choice(pool_texts) if i % 2 else None) for i in range(args.candidates)
        ]
        ref_tokens = [tokenize(t, None) for t in pool_texts]
        t0 = time.perf_counter()
        ref_best = []
        for cand in candidates:
            c_tokens = tokenize(cand, None)
            ref_best.append(max(rouge_scorer._score_lcs(r, c_tokens).fmeasure for r in ref_tokens))
        ref_s = (time.perf_counter() - t0) / len(candidates)

        pool = RougePool()
        for i, text in enumerate(pool_texts):
            pool.add(text, str(i))
        t0 = time.perf_counter()
        ours_best = [pool.best(cand, args.threshold)[0] for cand in candidates]
        ours_s = (time.perf_counter() - t0) / len(candidates)

        same = all((a > args.threshold) == (b > args.threshold) for a, b in zip(ref_best, ours_best))
        exact = all(a == b for a, b in zip(ref_best, ours_best) if a > args.threshold)
        dropped = sum(b > args.threshold for b in ref_best)
        verdict = "identical" if same and exact else ("same" if same else "DIFFER")
        print(
            f"{size:>6} {ref_s * 1000:>18.1f} {ours_s * 1000:>13.3f} {ref_s / ours_s:>8.0f}x"
            f" {dropped:>4}/{len(candidates):<3} {verdict:>10}"
        )
        if not same:
            raise SystemExit("decisions differ from rouge-score")


if __name__ == "__main__":
    main()
