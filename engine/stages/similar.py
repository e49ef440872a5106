"""Examples like a given one, by embedding cosine (Review's "more like this", `review similar`).

The project's embedder reads every example's instruction and input; nothing is stored, so the
answer always matches the current data. About 1,000 examples a second on 2 cores with MiniLM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import UserError
from engine.stages.context import Context
from engine.store import examples, review

BATCH = 256


def similar(ctx: Context, example_id: int, k: int) -> list[tuple[int, float]]:
    """The k examples of the project closest to `example_id` (itself left out), closest first."""
    from engine.stages.corpus import project_embedder

    project = ctx.need_project()
    if k < 1:
        raise UserError("-k must be at least 1")
    texts = examples.texts(ctx.db, project)
    if example_id not in texts:
        raise UserError(f"no example with id {example_id} in {project.name}")
    ids = list(texts)
    embedder = project_embedder(project)
    progress = ctx.progress("embed", len(ids), "examples")
    parts = []
    for start in range(0, len(ids), BATCH):
        ctx.check_stop()
        chunk = ids[start : start + BATCH]
        parts.append(embedder.embed([texts[i] for i in chunk]))
        progress.advance(len(chunk))
    vectors = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    scores = vectors @ vectors[ids.index(example_id)]
    order = [int(i) for i in np.argsort(-scores, kind="stable") if ids[int(i)] != example_id][:k]
    return [(ids[i], float(scores[i])) for i in order]


def run(ctx: Context, example_id: int, k: int) -> dict[str, Any]:
    found = similar(ctx, example_id, k)
    views = review.row_views(ctx.db, [i for i, _ in found])
    rows = [[i, f"{score:.3f}", views[i].status, views[i].preview[:90]] for i, score in found]
    ctx.table(["id", "cosine", "status", "instruction"], rows, "no other examples", ids=[i for i, _ in found])
    return {"example": example_id, "similar": len(found)}
