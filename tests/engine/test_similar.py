"""`review similar`: the examples closest to one, by embedding cosine (fake-hash embedder here)."""

from __future__ import annotations

from engine.store import review
from tests.helpers import fill, run_engine


def test_the_twin_comes_first_and_the_example_itself_never(db, project) -> None:
    ids = fill(db, project, 20, seed=4)
    first = review.get(db, ids[0])
    fields = {"instruction": first.instruction, "input": first.input, "output": "another answer", "task_type": "qa"}
    review.edit(db, project, ids[7], fields, "t")  # the same task as the first example
    r = run_engine("review", "similar", "--project", "test", "--id", str(ids[0]), "-k", "3")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[2:] if line.split() and line.split()[0].isdigit()]
    assert [int(row[0]) for row in rows][0] == ids[7] and rows[0][1] == "1.000"
    assert len(rows) == 3 and str(ids[0]) not in [row[0] for row in rows]
    assert float(rows[1][1]) >= float(rows[2][1])  # closest first
    missing = run_engine("review", "similar", "--project", "test", "--id", "99999")
    assert missing.returncode == 2 and "no example with id 99999" in missing.stderr
