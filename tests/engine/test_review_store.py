"""Review state in the store: decisions, flags, versioned edits, undo, filters, concurrency."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from engine.errors import UserError, ValidationError
from engine.store import review
from engine.store.review import Filter
from tests.helpers import fill


def state(db, example_id: int) -> tuple:
    e = review.get(db, example_id)
    return (e.status, e.flag, e.version, e.instruction, e.input, e.output, e.task_type)


def fields(e) -> dict[str, str]:
    return {"instruction": e.instruction, "input": e.input, "output": e.output, "task_type": e.task_type}


def test_accept_reject_reset_and_counts(db, project):
    ids = fill(db, project, 12)
    out = review.set_status(db, project, Filter(ids=tuple(ids[:3])), "accepted", "s")
    assert set(out.changed) == set(ids[:3]) and all(v == ("pending", "accepted") for v in out.changed.values())
    review.set_status(db, project, Filter(ids=(ids[3],)), "rejected", "s")
    assert review.counts(db, project) == {"pending": 8, "accepted": 3, "rejected": 1, "edited": 0}
    again = review.set_status(db, project, Filter(ids=tuple(ids[:3])), "accepted", "s")
    assert again.changed == {} and again.action_id is None  # nothing to record
    review.set_status(db, project, Filter(ids=(ids[0],)), "pending", "s")
    assert review.counts(db, project)["accepted"] == 2
    with pytest.raises(UserError, match="cannot set status"):
        review.set_status(db, project, Filter(), "edited", "s")


def test_edit_keeps_the_original_and_versions_every_change(db, project):
    [first, *_] = fill(db, project, 3)
    original = review.get(db, first)
    new = {**fields(original), "output": "A corrected answer about insulin dosing."}
    out = review.edit(db, project, first, new, "s")
    assert out.changed == {first: ("pending", "edited")}
    newer = {**new, "instruction": "Explain basal insulin dosing to a nurse."}
    review.edit(db, project, first, newer, "s")
    e = review.get(db, first)
    assert (e.status, e.version, e.output, e.instruction) == ("edited", 2, new["output"], newer["instruction"])
    vs = review.versions(db, first)
    assert [v.version for v in vs] == [0, 1, 2]
    assert (vs[0].instruction, vs[0].output) == (original.instruction, original.output)
    assert vs[1].output == new["output"] and vs[2].instruction == newer["instruction"]
    # an edit that changes nothing records nothing
    assert review.edit(db, project, first, newer, "s").action_id is None
    assert len(review.versions(db, first)) == 3


def test_edit_is_validated_and_changes_nothing_when_invalid(db, project):
    [first, *_] = fill(db, project, 2)
    before = state(db, first)
    with pytest.raises(ValidationError, match="output"):
        review.edit(db, project, first, {"instruction": "x y z w", "input": "", "output": "  "}, "s")
    with pytest.raises(ValidationError, match="task_type"):
        review.edit(db, project, first, {"instruction": "a b", "output": "c", "task_type": "Bad Type"}, "s")
    assert state(db, first) == before and review.versions(db, first) == []


def test_undo_walks_back_several_levels_including_edits(db, project):
    ids = fill(db, project, 6)
    e0 = review.get(db, ids[0])
    s0 = {i: state(db, i) for i in ids}
    review.set_status(db, project, Filter(ids=(ids[0],)), "accepted", "me")
    review.edit(db, project, ids[1], {**fields(review.get(db, ids[1])), "output": "Better answer."}, "me")
    review.set_flag(db, project, Filter(ids=(ids[2],)), "made-up dose", "me")
    review.set_status(db, project, Filter(), "rejected", "me")  # bulk: everything
    review.edit(db, project, ids[0], {**fields(e0), "output": "Rewritten after rejecting."}, "me")
    assert review.get(db, ids[0]).status == "edited"
    kinds = []
    while (u := review.undo(db, project, "me")) is not None:
        kinds.append(u.kind)
        assert u.conflicts == []
    assert kinds == ["edit", "rejected", "flag", "edit", "accepted"]
    assert {i: state(db, i) for i in ids} == s0  # text, status, flag and version all back
    assert len(review.versions(db, ids[1])) == 2  # undo restores text; history is kept
    # full-text search follows the restored text
    assert review.ids(db, project, Filter(search="Rewritten")) == []


def test_undo_is_per_session_and_leaves_changes_made_elsewhere(db, project):
    ids = fill(db, project, 4)
    review.set_status(db, project, Filter(ids=tuple(ids)), "accepted", "window-1")
    review.set_status(db, project, Filter(ids=(ids[0],)), "rejected", "window-2")  # someone else
    assert review.undo(db, project, "window-3") is None
    u = review.undo(db, project, "window-1")
    assert u is not None and u.conflicts == [ids[0]] and set(u.reverted) == set(ids[1:])
    assert review.get(db, ids[0]).status == "rejected"  # the other window's decision stands
    assert [review.get(db, i).status for i in ids[1:]] == ["pending"] * 3


def test_flags_and_filters(db, project):
    ids = fill(db, project, 60, seed=3)
    review.set_flag(db, project, Filter(ids=(ids[0], ids[1])), "wrong   unit\n(mg vs g)", "s")
    assert review.get(db, ids[0]).flag == "wrong unit (mg vs g)"
    flagged = {i for i, _ in review.ids(db, project, Filter(flagged=True))}
    assert {ids[0], ids[1]} <= flagged
    assert {i for i, _ in review.ids(db, project, Filter(reason="MG VS"))} == {ids[0], ids[1]}
    assert review.ids(db, project, Filter(reason="100%_")) == []  # LIKE wildcards are literal
    review.set_flag(db, project, Filter(ids=(ids[0],)), "", "s")
    assert review.get(db, ids[0]).flag == ""
    by_type = review.ids(db, project, Filter(task_type="qa"))
    assert by_type and all(review.get(db, i).task_type == "qa" for i, _ in by_type)
    imported = review.ids(db, project, Filter(generation=review.IMPORTED))
    assert imported and all(review.get(db, i).generation_id is None for i, _ in imported)
    gen = review.get(db, ids[0]).generation_id
    assert all(review.get(db, i).generation_id == gen for i, _ in review.ids(db, project, Filter(generation=gen)))
    review.set_status(db, project, Filter(task_type="qa"), "accepted", "s")
    assert {i for i, s in review.ids(db, project, Filter(status="accepted"))} == {i for i, _ in by_type}
    with pytest.raises(UserError, match="unknown status"):
        review.ids(db, project, Filter(status="maybe"))


def test_full_text_search_is_safe_and_prefix_based(db, project):
    ids = fill(db, project, 40, seed=5)
    review.edit(db, project, ids[7], {**fields(review.get(db, ids[7])), "output": "Metformin lowers glucose."}, "s")
    assert [i for i, _ in review.ids(db, project, Filter(search="metform"))] == [ids[7]]
    assert [i for i, _ in review.ids(db, project, Filter(search="GLUCOSE metformin"))] == [ids[7]]
    for nasty in ['"', "AND OR NOT", "*", "(", "a:b", "NEAR(", "'; DROP TABLE examples; --", "é"]:
        review.ids(db, project, Filter(search=nasty))  # never an FTS syntax error
    assert len(review.ids(db, project, Filter(search="   "))) == 40


@pytest.mark.parametrize("sort", list(review.SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_sort_by_every_column(db, project, sort, descending):
    fill(db, project, 50, seed=2)
    got = [i for i, _ in review.ids(db, project, Filter(), sort, descending)]
    rows = {i: review.get(db, i) for i in got}
    key = {
        "id": lambda e: e.id,
        "status": lambda e: e.status,
        "type": lambda e: e.task_type,
        "instruction": lambda e: e.instruction,
        "reason": lambda e: e.flag,
        "rating": lambda e: e.rating or 0,
        "length": lambda e: len(e.instruction) + len(e.input) + len(e.output),
        "run": lambda e: e.generation_id or 0,
    }[sort]
    want = sorted(rows, key=lambda i: (key(rows[i]), i), reverse=descending)
    assert got == want
    with pytest.raises(UserError, match="cannot sort"):
        review.ids(db, project, Filter(), "colour")


def _hammer(home: str, worker: int, ids: list[int], rounds: int, out: multiprocessing.Queue) -> None:
    os.environ["SELFSPEC_HOME"] = home
    from engine.store import open_store, projects
    from engine.store import review as rv

    db = open_store()
    p = projects.get(db, "test")
    edits = 0
    for r in range(rounds):
        target = ids[(r * 7 + worker) % len(ids)]
        step = r % 4
        if step == 0:
            rv.set_status(db, p, rv.Filter(ids=(target,)), "accepted", f"w{worker}")
        elif step == 1:
            e = rv.get(db, target)
            body = {"instruction": e.instruction, "input": e.input, "output": f"w{worker} r{r}", "task_type": "qa"}
            if rv.edit(db, p, target, body, f"w{worker}").action_id:
                edits += 1
        elif step == 2:
            rv.set_status(db, p, rv.Filter(), "rejected", f"w{worker}")
        else:
            rv.undo(db, p, f"w{worker}")
    out.put(edits)


def test_two_processes_reviewing_one_project_do_not_corrupt_it(db, project, home):
    ids = fill(db, project, 20)
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(home), w, ids, 120, q)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    edits = q.get() + q.get()
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.execute("INSERT INTO examples_fts(examples_fts) VALUES ('integrity-check')")
    # every edit became exactly one version; versions of each example are 0..n without gaps
    per_example = db.execute(
        "SELECT example_id, count(*), max(version) FROM example_versions GROUP BY example_id"
    ).fetchall()
    assert sum(n - 1 for _, n, _ in per_example) == edits
    assert all(n == top + 1 for _, n, top in per_example)
    assert sum(review.counts(db, project).values()) == 20
