"""Dataset export and import: formats, round trips, validation, all-or-nothing, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import UserError, ValidationError
from engine.stages import dataset
from engine.store import review
from engine.store.examples import add_imported, training_set
from engine.store.review import Filter
from tests.helpers import fill, run_engine


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def reviewed(db, project):
    ids = fill(db, project, 30, seed=4)
    review.set_status(db, project, Filter(ids=tuple(ids[:10])), "accepted", "s")
    review.set_status(db, project, Filter(ids=tuple(ids[10:15])), "rejected", "s")
    e = review.get(db, ids[15])
    review.edit(
        db,
        project,
        e.id,
        {
            "instruction": "Edited: " + e.instruction,
            "input": e.input,
            "output": "Fixed answer ✓ — naïve",
            "task_type": e.task_type,
        },
        "s",
    )
    return ids


def test_training_set_is_accepted_and_edited_unless_pending_is_asked_for(db, project, reviewed):
    approved = [e.id for e in training_set(db, project)]
    assert approved == sorted(reviewed[:10] + [reviewed[15]])
    with_pending = [e.id for e in training_set(db, project, include_pending=True)]
    assert len(with_pending) == 11 + 14 and not set(reviewed[10:15]) & set(with_pending)


def test_formats_have_the_expected_shape(db, project, reviewed, tmp_path):
    e = review.get(db, reviewed[15])
    for fmt in ("alpaca", "sharegpt", "openai"):
        out = tmp_path / f"x.{fmt}.jsonl"
        assert dataset.export(training_set(db, project), fmt, out, system="You are a careful clinician.") == 11
        rec = lines(out)[-1]
        prompt = dataset.user_turn(e.instruction, e.input)
        if fmt == "alpaca":
            assert rec == {"instruction": e.instruction, "input": e.input, "output": e.output, "task_type": e.task_type}
        elif fmt == "sharegpt":
            assert rec["conversations"] == [
                {"from": "system", "value": "You are a careful clinician."},
                {"from": "human", "value": prompt},
                {"from": "gpt", "value": e.output},
            ]
        else:
            assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
            assert rec["messages"][1]["content"] == prompt and rec["messages"][2]["content"] == e.output
        assert "✓" in out.read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_parquet_loads_with_hugging_face_datasets(db, project, reviewed, tmp_path):
    import datasets

    out = tmp_path / "train.parquet"
    assert dataset.export(training_set(db, project), "parquet", out) == 11
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds.num_rows == 11 and ds.column_names == ["instruction", "input", "output", "task_type", "rating"]
    assert set(ds["rating"]) == {None}  # nobody rated these
    assert ds[-1]["output"] == "Fixed answer ✓ — naïve"
    jsonl = tmp_path / "train.jsonl"
    dataset.export(training_set(db, project), "alpaca", jsonl)
    unrated = {k: v for k, v in ds[-1].items() if k != "rating"}  # JSONL carries a rating only when there is one
    assert datasets.load_dataset("json", data_files=str(jsonl), split="train")[-1] == unrated


@pytest.mark.parametrize("fmt", dataset.FORMATS)
def test_round_trip_into_another_project(db, project, reviewed, tmp_path, fmt):
    from engine.store import projects

    out = tmp_path / f"a{dataset.default_suffix(fmt)}"
    dataset.export(training_set(db, project), fmt, out)
    found, drafts = dataset.read_dataset(out)
    assert found == fmt and len(drafts) == 11
    other = projects.create(db, "other", "biomedicine", "smollm2-135m-instruct", {})
    assert add_imported(db, other, drafts, "accepted", str(out)) == (11, 0)
    assert add_imported(db, other, drafts, "accepted", str(out)) == (0, 11)  # importing twice adds nothing
    again = tmp_path / f"b{dataset.default_suffix(fmt)}"
    dataset.export(training_set(db, other), fmt, again)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(out).to_pylist() == pq.read_table(again).to_pylist()
    else:
        assert out.read_text(encoding="utf-8") == again.read_text(encoding="utf-8")
    if fmt in ("alpaca", "parquet"):  # these keep instruction, input and task type apart
        mine = [(e.instruction, e.input, e.output, e.task_type) for e in training_set(db, project)]
        theirs = [(e.instruction, e.input, e.output, e.task_type) for e in training_set(db, other)]
        assert mine == theirs
    imported = review.get(db, next(training_set(db, other)).id)
    assert imported.generation_id is None and imported.provenance["import"] == str(out)


BAD = [
    ('{"instruction": "a b c", "output": "x"}\n{"instruction": "d e", "output": \n', 2, None, "invalid JSON"),
    ('{"instruction": "a b c", "output": "x"}\n{"instruction": "d", "output": 5}\n', 2, "output", "must be text"),
    ('{"instruction": "a b c", "output": "x", "colour": "red"}\n', 1, "colour", "unknown field"),
    ('{"instruction": "a b c"}\n', 1, "output", "missing"),
    ("[1, 2]\n", 1, None, "cannot tell the format"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "messages", "one user turn then one assistant"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}\n', 1, "messages[0].role", "unknown role"),
    ('{"messages": [{"role": "user"}]}\n', 1, "messages[0]", "needs 'role' and 'content'"),
    (
        '{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}\n',
        1,
        "messages (user turn)",
        "is empty",
    ),
    ('{"conversations": "hello"}\n', 1, "conversations", "must be a list"),
    (
        '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"},'
        ' {"from": "human", "value": "more"}, {"from": "gpt", "value": "b"}]}\n',
        1,
        "conversations",
        "got user",
    ),
    ('{"instruction": "a b c", "output": "x"}\n"just a string"\n', 2, None, "expected a JSON object"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD)
def test_malformed_files_name_the_line_and_field(tmp_path, text, line, field, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        dataset.read_dataset(path)
    first = err.value.problems[0]
    assert (first.line, first.field) == (line, field) and message in first.message
    assert f"{path}:{line}" in str(err.value) and "nothing was imported" in str(err.value)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        dataset.read_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="is a folder"):
        dataset.read_dataset(tmp_path)
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValidationError, match="no examples found"):
        dataset.read_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"instruction": "caf\xe9 au lait", "output": "x"}\n')
    with pytest.raises(ValidationError, match=r"latin1.jsonl:1: not valid UTF-8"):
        dataset.read_dataset(tmp_path / "latin1.jsonl")
    (tmp_path / "blob.jsonl").write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(ValidationError, match="NUL bytes"):
        dataset.read_dataset(tmp_path / "blob.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        dataset.read_dataset(tmp_path / "broken.parquet")
    with pytest.raises(UserError, match="unknown dataset format"):
        dataset.read_dataset(tmp_path / "empty.jsonl", "csv")


def test_parquet_rows_are_validated_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"instruction": ["fine one", ""], "output": ["ok", "ok"]}), path)
    with pytest.raises(ValidationError, match=r"p.parquet:2: field 'instruction': is empty"):
        dataset.read_dataset(path)


def test_export_never_leaves_a_half_written_file(db, project, reviewed, tmp_path):
    out = tmp_path / "train.jsonl"
    out.write_text("previous export\n")

    def failing():
        yield from list(training_set(db, project))[:3]
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="No space left"):
        dataset.export(failing(), "alpaca", out)
    assert out.read_text() == "previous export\n"
    assert not (tmp_path / "train.jsonl.partial").exists()
    with pytest.raises(UserError, match="no such folder"):
        dataset.export(training_set(db, project), "alpaca", tmp_path / "nope" / "x.jsonl")


def test_cli_review_and_dataset_commands(db, project, home, tmp_path):
    ids = fill(db, project, 20, seed=9)
    r = run_engine("review", "accept", "--project", "test", "--id", str(ids[0]), str(ids[1]), "999999")
    assert r.returncode == 0 and "changed: 2" in r.stdout and "no such example ids: [999999]" in r.stderr
    r = run_engine("review", "reject", "--project", "test", "--task-type", "qa", "--status", "pending")
    assert r.returncode == 0
    qa_pending = [i for i in ids[2:] if review.get(db, i).task_type == "qa"]
    assert all(review.get(db, i).status == "rejected" for i in qa_pending)
    r = run_engine("review", "undo", "--project", "test")
    assert r.returncode == 0 and "undone: rejected" in r.stdout
    assert all(review.get(db, i).status == "pending" for i in qa_pending)
    r = run_engine("review", "flag", "--project", "test", "--id", str(ids[2]), "--reason-text", "dose looks wrong")
    assert r.returncode == 0 and review.get(db, ids[2]).flag == "dose looks wrong"
    r = run_engine("review", "edit", "--project", "test", "--id", str(ids[3]), "--output", "A better answer.")
    assert r.returncode == 0 and "version: 1" in r.stdout and review.get(db, ids[3]).status == "edited"
    r = run_engine("review", "accept", "--project", "test")
    assert r.returncode == 2 and "say which examples" in r.stderr
    r = run_engine("review", "stats", "--project", "test")
    assert r.returncode == 0 and "dose looks wrong" in r.stdout
    assert any(line.split()[:5] == ["all", "17", "2", "0", "1"] for line in r.stdout.splitlines())

    out = tmp_path / "train.jsonl"
    r = run_engine("dataset", "export", "--project", "test", "--format", "openai", "--out", str(out))
    assert r.returncode == 0 and "exported: 3" in r.stdout and len(lines(out)) == 3
    r = run_engine("dataset", "export", "--project", "test", "--include-pending")
    default = home / "projects" / "test" / "exports" / "test-alpaca.jsonl"
    assert r.returncode == 0 and len(lines(default)) == 20
    r = run_engine("project", "create", "copy", "--domain", "biomedicine")
    r = run_engine("dataset", "import", str(out), "--project", "copy", "--as", "accepted")
    assert r.returncode == 0 and "added: 3" in r.stdout and "format: openai" in r.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + '{"messages": [{"role": "user", "content": 3}]}\n')
    before = db.execute("SELECT count(*) FROM examples").fetchone()[0]
    r = run_engine("dataset", "import", str(bad), "--project", "copy")
    assert r.returncode == 2 and f"{bad}:4: field 'messages'" in r.stderr and "Traceback" not in r.stderr
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == before  # all or nothing


def test_kill_9_during_import_or_export_leaves_all_or_nothing(db, project, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    n = 30_000
    big = tmp_path / "big.jsonl"
    with big.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"instruction": f"Question {i} about renal dosing?", "output": f"Answer {i}."}) + "\n")
    args = [sys.executable, "-m", "engine", "--format", "text", "dataset", "import", str(big), "--project", "test"]
    killed_at = []
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = db.execute("SELECT count(*) FROM examples").fetchone()[0]
        assert stored in (0, n), f"half an import is stored: {stored}"
        killed_at.append(stored)
        if stored:
            break
    r = run_engine("dataset", "import", str(big), "--project", "test", "--as", "accepted")
    assert r.returncode == 0
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == n
    if killed_at[-1] == 0:
        assert f"added: {n}" in r.stdout
    db.execute("UPDATE examples SET status = 'accepted'")
    out = tmp_path / "train.jsonl"
    exp = [
        sys.executable,
        "-m",
        "engine",
        "--format",
        "text",
        "dataset",
        "export",
        "--project",
        "test",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(exp, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if out.exists():  # finished before the kill: then it is complete
        assert len(out.read_text().splitlines()) == n
    assert run_engine(*exp[5:]).returncode == 0
    assert len(out.read_text().splitlines()) == n


def test_the_training_set_can_be_one_generations(db, project) -> None:
    fill(db, project, 30, generations=2, imported_every=0)
    db.execute("UPDATE examples SET status = 'accepted'")
    gens = sorted({r[0] for r in db.execute("SELECT generation_id FROM examples").fetchall()})
    every = list(training_set(db, project))
    second = list(training_set(db, project, generations=[gens[1]]))
    assert len(every) == 30 and len(second) == 15
    assert all(e.generation_id == gens[1] for e in second)
    assert len(list(training_set(db, project, generations=gens))) == 30
