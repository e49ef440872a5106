"""Synthetic examples for review tests and the review benchmark (no model needed)."""

from __future__ import annotations

import json
import random

from engine.store import generation
from engine.store.db import now
from engine.store.records import Project

WORDS = (
    "patient dose insulin renal trial cohort biomarker tumour antibiotic sepsis lipid cardiac gene mutation "
    "therapy placebo outcome mortality screening vaccine infection enzyme receptor protein clinical risk "
    "diabetes hypertension asthma kidney liver imaging biopsy statin aspirin steroid fever pain pregnancy"
).split()
TYPES = ("qa", "summarization", "classification", "extraction", "explanation", "rewriting")
FLAGS = ("", "", "", "", "", "", "", "response hit the token limit", "off topic")


def fill(db, project: Project, n: int, seed: int = 0, generations: int = 2, imported_every: int = 10) -> list[int]:
    """Insert n examples spread over `generations` generations (every tenth imported); returns ids."""
    rng = random.Random(seed)
    gens = [generation.create(db, project, {"generate": {}, "model": "synthetic"}, n).id for _ in range(generations)]
    stamp = now()
    rows = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(6, 18))
        answer = rng.choices(WORDS, k=rng.randint(10, 80))
        gen_id = None if imported_every and i % imported_every == imported_every - 1 else gens[i % len(gens)]
        passages = [
            {"chunk_id": rng.randint(1, 500), "score": round(rng.random(), 3), "source": f"doc{j}.txt"}
            for j in range(rng.randint(0, 3))
        ]
        rows.append(
            (
                project.id,
                gen_id,
                f"Task {i}: explain " + " ".join(words) + ".",
                "" if i % 3 else "Context: " + " ".join(rng.choices(WORDS, k=12)),
                " ".join(answer).capitalize() + ".",
                TYPES[i % len(TYPES)],
                rng.choice(FLAGS),
                json.dumps({"synthetic": i}),
                json.dumps(passages),
                stamp,
                stamp,
            )
        )
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO examples (project_id, generation_id, instruction, input, output, task_type, flag,"
            " provenance, passages, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    found = db.execute("SELECT id FROM examples WHERE project_id = ? ORDER BY id", [project.id]).fetchall()
    return [int(r[0]) for r in found]
