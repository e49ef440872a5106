"""Retrieval benchmark on PubMedQA (shared/data, not shipped): quality and speed, as ratios.

Quality: each PubMedQA question should retrieve its own abstract. hit@1/hit@3 of the product
path (all-MiniLM-L6-v2 + hnswlib) against a 64-bucket hashed bag-of-words baseline (the test
embedder) run through the same import and index code in the same process.
Speed: hnswlib query time against exact brute-force cosine search over the same vectors, with
hnswlib's recall@5 against the exact answer, on the corpus and on 50,000 synthetic vectors.

    .venv/bin/python bench/retrieval.py [--items 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"


def build(items: list[tuple[str, dict]], embedder: str, home: Path) -> tuple[object, float, int]:
    os.environ["SELFSPEC_HOME"] = str(home)
    from engine.stages.context import Context
    from engine.stages.corpus import Searcher, import_corpus
    from engine.store import open_store, projects

    db = open_store()
    project = projects.create(db, "bench", "biomedicine", "smollm2-135m-instruct", {"embedder": embedder})
    corpus = home / "pubmed.jsonl"
    with corpus.open("w") as fh:
        for pmid, item in items:
            fh.write(json.dumps({"text": " ".join(item["CONTEXTS"]), "title": pmid}) + "\n")
    ctx = Context(db=db, emit=lambda e: None, project=project, threads=os.cpu_count() or 1)
    t0 = time.perf_counter()
    summary = import_corpus(ctx, [corpus])
    return Searcher(ctx), time.perf_counter() - t0, summary["chunks"]


def quality(searcher, items) -> tuple[float, float]:
    line_of = {pmid: i + 1 for i, (pmid, _) in enumerate(items)}
    h1 = h3 = 0
    for pmid, item in items:
        hits = searcher.search(item["QUESTION"], 3)
        lines = [int(h.chunk.source.rsplit(":", 1)[1]) for h in hits]
        h1 += bool(lines) and lines[0] == line_of[pmid]
        h3 += line_of[pmid] in lines
    return h1 / len(items), h3 / len(items)


def speed(vectors: np.ndarray, queries: np.ndarray, k: int = 5) -> tuple[float, float, float]:
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=200, M=16)
    index.add_items(vectors, np.arange(len(vectors)))
    index.set_ef(64)
    index.set_num_threads(1)
    t0 = time.perf_counter()
    approx = [index.knn_query(q.reshape(1, -1), k=k)[0][0] for q in queries]
    t_hnsw = (time.perf_counter() - t0) / len(queries)
    norm = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    t0 = time.perf_counter()
    exact = [np.argsort(-(norm @ (q / np.linalg.norm(q))))[:k] for q in queries]
    t_exact = (time.perf_counter() - t0) / len(queries)
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)])
    return t_hnsw, t_exact, float(recall)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=500)
    args = ap.parse_args()
    if not DATA.is_file():
        sys.exit(f"missing {DATA}")
    items = list(json.loads(DATA.read_text()).items())[: args.items]
    os.environ["SELFSPEC_PLUGINS"] = "tests.fakes"  # the tests' bag-of-words embedder is the baseline
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        real, t_real, n_chunks = build(items, "all-MiniLM-L6-v2", Path(a))
        base, t_base, _ = build(items, "fake-hash", Path(b))
        r1, r3 = quality(real, items)
        b1, b3 = quality(base, items)
        print(
            f"corpus: {len(items)} PubMedQA abstracts -> {n_chunks} chunks; import+embed+index {t_real:.1f}s"
            f" ({n_chunks / t_real:.1f} chunks/s)"
        )
        print(f"hit@1  MiniLM {r1:.3f}  hashed-BoW {b1:.3f}  ratio {r1 / max(b1, 1e-9):.2f}x")
        print(f"hit@3  MiniLM {r3:.3f}  hashed-BoW {b3:.3f}  ratio {r3 / max(b3, 1e-9):.2f}x")
        vecs = np.stack([real.index._index.get_items([i])[0] for i in sorted(real.index.ids())]).astype(np.float32)
        queries = real.embedder.embed([item["QUESTION"] for _, item in items[:100]])
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(1000, 384))
    clustered = (centers[rng.integers(0, 1000, 50_000)] + 0.5 * rng.normal(size=(50_000, 384))).astype(np.float32)
    near = clustered[:100] + 0.1 * rng.normal(size=(100, 384)).astype(np.float32)
    for label, data, q in (("corpus", vecs, queries), ("50k clustered", clustered, near)):
        t_h, t_e, recall = speed(data, q)
        print(
            f"search {label:>13}: hnswlib {t_h * 1e3:.3f} ms  exact {t_e * 1e3:.3f} ms"
            f"  speedup {t_e / t_h:.1f}x  recall@5 {recall:.3f}"
        )


if __name__ == "__main__":
    main()
