"""Hostile but fair input: every case gets a clear message naming the file/line/field, exit 2 (or
3 where others went in), no traceback, and nothing stored or written where it should not be."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers import run_engine

DEEP = 60_000


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clean(r) -> None:  # noqa: ANN001
    assert "Traceback" not in r.stderr + r.stdout
    assert "internal error" not in r.stderr + r.stdout


@pytest.fixture
def cli_project(home: Path) -> str:
    r = run_engine("project", "create", "hp", "--domain", "medicine", "--base-model", "fake-generator")
    assert r.returncode == 0, r.stderr
    return "hp"


def store_rows(home: Path, table: str) -> int:
    con = sqlite3.connect(home / "selfspec.db")
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


# ---- names that become paths ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape", "/tmp/selfspec-abs-escape", ".."])  # more in test_sweep
def test_adapter_names_never_leave_their_folder(home: Path, cli_project: str, tmp_path: Path, name: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "Explain insulin action", "output": "It lowers glucose."}) + "\n")
    assert run_engine("dataset", "import", str(data), "--project", cli_project, "--as", "accepted").returncode == 0
    before = set(home.parent.rglob("data.jsonl"))
    r = run_engine("train", "--project", cli_project, "--name", name)
    clean(r)
    assert r.returncode == 2
    assert "invalid adapter name" in r.stderr
    assert set(home.parent.rglob("data.jsonl")) == before
    assert not Path("/tmp/selfspec-abs-escape").exists()
    assert store_rows(home, "adapters") == 0


def test_seed_set_and_model_names_are_checked(home: Path, cli_project: str, tmp_path: Path) -> None:
    seeds = tmp_path / "my seeds (v2).jsonl"
    seeds.write_text(json.dumps({"instruction": "Name a statin drug", "output": "Atorvastatin"}) + "\n")
    r = run_engine("seeds", "import", str(seeds), "--project", cli_project, "--set", "../x")
    clean(r)
    assert r.returncode == 2 and "invalid seed set name" in r.stderr
    r = run_engine("seeds", "import", str(seeds), "--project", cli_project)  # a safe name from the file name
    assert r.returncode == 0, r.stderr
    assert "my_seeds_v2" in r.stdout
    r = run_engine("models", "add", str(seeds), "--name", "../../m")
    clean(r)
    assert r.returncode == 2


# ---- output options never touch the store ---------------------------------------------------


def test_output_options_refuse_the_store_and_its_files(home: Path, cli_project: str, tmp_path: Path) -> None:
    db = home / "selfspec.db"
    link = tmp_path / "link.jsonl"
    link.symlink_to(db)
    hard = tmp_path / "hard.jsonl"
    os.link(db, hard)
    targets = [db, home / "selfspec.db-wal", home / "selfspec.db-shm", link, hard, home / "logs" / "engine.log"]
    before = {t: store_rows(home, t) for t in ("projects", "examples", "seeds")}
    for out in targets:
        r = run_engine("dataset", "export", "--project", cli_project, "--out", str(out))
        clean(r)
        assert r.returncode == 2, (out, r.stderr)
        assert "refusing to write" in r.stderr
        r = run_engine("eval", "run", "--project", cli_project, "--json", str(out), "--no-seeds")
        clean(r)
        assert r.returncode == 2 and "refusing to write" in r.stderr, (out, r.stderr)
    assert {t: store_rows(home, t) for t in before} == before
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert run_engine("project", "list").returncode == 0


def test_output_option_refuses_devices_and_folders(home: Path, cli_project: str, tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    for out in (fifo, tmp_path, Path("/dev/null")):
        start = time.monotonic()
        r = run_engine("dataset", "export", "--project", cli_project, "--out", str(out), timeout=60)
        clean(r)
        assert r.returncode == 2, (out, r.stderr)
        assert time.monotonic() - start < 30


# ---- files that are not regular files -------------------------------------------------------


def _specials(tmp_path: Path) -> list[Path]:
    fifo = tmp_path / "seeds.jsonl"
    os.mkfifo(fifo)
    link = tmp_path / "random.jsonl"
    link.symlink_to("/dev/urandom")
    return [fifo, link, Path("/dev/zero")]


def _readers(p: str, bad: Path) -> list[list[str]]:
    return [
        ["seeds", "validate", str(bad)],
        ["seeds", "import", str(bad), "--project", p],
        ["dataset", "import", str(bad), "--project", p],
        ["eval", "run", "--project", p, "--data", str(bad)],
        ["eval", "run", "--project", p, "--pubmedqa", str(bad)],
        ["models", "add", str(bad)],
        ["corpus", "import", str(bad), "--project", p],
        ["tools", "setup", "--sdist", str(bad)],
    ]


def test_pipes_and_devices_are_refused_everywhere_without_hanging(home: Path, cli_project: str, tmp_path: Path):
    """A FIFO through every reading command; a device and a link to one through two (test_sweep has the rest)."""
    fifo, link, zero = _specials(tmp_path)
    cases = _readers(cli_project, fifo) + [a for b in (link, zero) for a in _readers(cli_project, b)[1::5]]
    for args in cases:
        start = time.monotonic()
        r = run_engine(*args, timeout=60)
        clean(r)
        assert r.returncode == 2, (args, r.stderr)
        assert any(str(x) in r.stderr for x in (fifo, link, zero)), (args, r.stderr)
        assert time.monotonic() - start < 30
    assert store_rows(home, "seeds") == 0 and store_rows(home, "examples") == 0


def test_corpus_folder_skips_a_fifo_with_its_reason(home: Path, tmp_path: Path) -> None:
    r = run_engine("project", "create", "cp", "--domain", "medicine", "--embedder", "fake-hash")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("Insulin lowers blood glucose in people with diabetes.")
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.md").symlink_to("/dev/zero")
    r = run_engine("corpus", "import", str(folder), "--project", "cp", timeout=120)
    clean(r)
    assert r.returncode == 3, r.stderr
    assert "pipe.txt" in r.stdout + r.stderr and "named pipe" in r.stdout + r.stderr
    assert "zero.md" in r.stdout + r.stderr and "character device" in r.stdout + r.stderr
    assert store_rows(home, "documents") == 1


# ---- deeply nested data ---------------------------------------------------------------------


def test_deep_nesting_reports_file_and_line(home: Path, cli_project: str, tmp_path: Path) -> None:
    good = json.dumps({"instruction": "Explain insulin action", "output": "It lowers glucose."})
    deep_line = "[" * DEEP + "]" * DEEP
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(f"{good}\n{good.replace('insulin', 'metformin')}\n{deep_line}\n")
    yaml_file = tmp_path / "qna.yaml"
    yaml_file.write_text("version: 2\nseed_examples:\n  - question: " + "[" * DEEP + "]" * DEEP + "\n")
    whole = tmp_path / "deep.json"
    whole.write_text('{"1": {"QUESTION": "q",\n"CONTEXTS": ' + "[" * DEEP + "]" * DEEP + "}}")
    cases = [
        (["seeds", "validate", str(jsonl)], f"{jsonl}:3"),
        (["seeds", "import", str(jsonl), "--project", cli_project], f"{jsonl}:3"),
        (["seeds", "validate", str(yaml_file)], str(yaml_file)),
        (["dataset", "import", str(jsonl), "--project", cli_project], f"{jsonl}:3"),
        (["eval", "run", "--project", cli_project, "--data", str(jsonl)], f"{jsonl}:3"),
        (["eval", "run", "--project", cli_project, "--pubmedqa", str(whole)], f"{whole}:2"),
    ]
    for args, where in cases:
        r = run_engine(*args)
        clean(r)
        assert r.returncode == 2, (args, r.stderr)
        assert where in r.stderr and "nested" in r.stderr, (args, r.stderr)
    assert store_rows(home, "seeds") == 0 and store_rows(home, "examples") == 0


# ---- text that cannot be stored -------------------------------------------------------------


def test_lone_surrogate_is_caught_by_validation(home: Path, cli_project: str, tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text(
        json.dumps({"instruction": "Explain insulin action", "output": "fine"})
        + "\n"
        + '{"instruction": "Explain \\ud800 here", "output": "x"}\n'
    )
    for args in (
        ["seeds", "validate", str(f)],
        ["seeds", "import", str(f), "--project", cli_project],
        ["dataset", "import", str(f), "--project", cli_project],
        ["eval", "run", "--project", cli_project, "--data", str(f)],
    ):
        r = run_engine(*args)
        clean(r)
        assert r.returncode == 2, (args, r.stderr)
        assert f"{f}:2" in r.stderr and "surrogate" in r.stderr, (args, r.stderr)
    assert store_rows(home, "seeds") == 0 and store_rows(home, "examples") == 0


def test_argument_that_is_not_utf8_is_refused(home: Path, cli_project: str) -> None:
    r = run_engine("project", "create", "ok", "--domain", "bad \udcff domain")
    clean(r)
    assert r.returncode == 2 and "--domain" in r.stderr
    assert store_rows(home, "projects") == 1


# ---- messages that name the line and field --------------------------------------------------


def test_nul_bytes_name_their_line(home: Path, cli_project: str, tmp_path: Path) -> None:
    f = tmp_path / "n.jsonl"
    good = json.dumps({"instruction": "Explain insulin action", "output": "fine"})
    f.write_bytes((good + "\n" + good + "\n").encode() + b'{"instruction": "a\x00b"}\n')
    for args in (["seeds", "validate", str(f)], ["dataset", "import", str(f), "--project", cli_project]):
        r = run_engine(*args)
        clean(r)
        assert r.returncode == 2 and f"{f}:3" in r.stderr and "NUL" in r.stderr, (args, r.stderr)


def _eval_file(tmp_path: Path, rows: list[dict]) -> Path:
    f = tmp_path / "e.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_eval_file_problems_name_line_and_field(home: Path, cli_project: str, tmp_path: Path) -> None:
    yes = {"instruction": "Is insulin a hormone?", "output": "yes", "labels": ["yes", "no"]}
    free = {"instruction": "Name a statin", "output": "atorvastatin"}
    cases = [
        ([yes, yes, free], ":3: field 'labels'", "all classification"),
        ([free, {**free, "labels": []}], ":2: field 'labels'", "is empty"),
        ([{"instruction": 5, "output": "x"}], ":1: field 'instruction'", "must be text, got int"),
        ([{"output": "x"}], ":1: field 'instruction'", "missing"),
    ]
    for rows, where, what in cases:
        f = _eval_file(tmp_path, rows)
        # no expert exists in this project: the file is still what gets reported
        r = run_engine("eval", "run", "--project", cli_project, "--data", str(f))
        clean(r)
        assert r.returncode == 2, r.stderr
        assert f"{f}{where}" in r.stderr and what in r.stderr, r.stderr
        assert "expert" not in r.stderr


def test_seed_field_of_the_wrong_type_says_so(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"instruction": 5, "output": "x"}) + "\n")
    r = run_engine("seeds", "validate", str(f))
    assert r.returncode == 2 and "field 'instruction': must be text, got int" in r.stderr


@pytest.mark.parametrize("embedder", ["/etc/passwd", "/nonexistent/folder", "/tmp", "/dev/zero"])
def test_project_create_checks_the_embedder(home: Path, embedder: str) -> None:
    r = run_engine("project", "create", "emb", "--domain", "medicine", "--embedder", embedder)
    clean(r)
    assert r.returncode == 2 and embedder in r.stderr, r.stderr
    assert store_rows(home, "projects") == 0
