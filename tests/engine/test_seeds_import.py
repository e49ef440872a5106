"""Seed import: shipped sets are valid; every malformed input is refused whole, with its location."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine import paths
from engine.cli import main
from engine.stages.seeds_io import read_seed_file
from engine.store import seeds
from tests.helpers import counts, run_engine

GOOD = {"instruction": "Define anemia.", "input": "", "output": "Low hemoglobin.", "task_type": "definition"}


@pytest.mark.parametrize("name", ["biomedicine", "finance"])
def test_shipped_seed_sets_are_valid_and_varied(name: str) -> None:
    drafts = read_seed_file(paths.shipped_dir() / f"{name}.jsonl")
    assert len(drafts) >= 60
    types = Counter(d.task_type for d in drafts)
    assert len(types) >= 8, types
    assert min(types.values()) >= 4
    assert len({d.instruction + d.input for d in drafts}) == len(drafts)


def test_finance_has_numeric_reasoning_over_tables() -> None:
    drafts = read_seed_file(paths.shipped_dir() / "finance.jsonl")
    numeric = [d for d in drafts if d.task_type == "numeric_reasoning"]
    assert len(numeric) >= 6
    assert any("|" in d.input for d in numeric)


def _jsonl(*records: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


BAD_INPUTS: list[tuple[str, str | bytes, str]] = [
    ("bad.jsonl", _jsonl(GOOD, "{not json"), ":2: invalid JSON"),
    ("bad.jsonl", _jsonl({"input": "x", "output": "y"}), ":1: field 'instruction': missing"),
    ("bad.jsonl", _jsonl({"instruction": "Q?"}), ":1: field 'output': missing"),
    ("bad.jsonl", _jsonl({"instruction": "", "output": "y"}), "field 'instruction': is empty"),
    ("bad.jsonl", _jsonl({"instruction": "  ", "output": "y"}), "field 'instruction': is empty"),
    ("bad.jsonl", _jsonl({"instruction": 5, "output": "y"}), "field 'instruction': must be text, got int"),
    ("bad.jsonl", _jsonl({"instruction": "Q", "output": ["a"]}), "field 'output': must be text, got list"),
    (
        "bad.jsonl",
        _jsonl({"instruction": "Q", "output": "y", "instrution": "typo"}),
        "field 'instrution': unknown field",
    ),
    ("bad.jsonl", _jsonl({"instruction": "Q", "output": "y", "task_type": "Yes No!"}), "field 'task_type'"),
    ("bad.jsonl", _jsonl(["a", "list"]), ":1: expected an object"),
    ("bad.jsonl", _jsonl(GOOD, GOOD), ":2: field 'instruction': duplicate of the task on line 1"),
    ("bad.jsonl", _jsonl({"instruction": "x" * 2001, "output": "y"}), "longer than 2000"),
    ("bad.jsonl", _jsonl({"instruction": "Q\u0000", "output": "y"}), "NUL character"),
    ("empty.jsonl", "", "no seed tasks found"),
    ("blank.jsonl", "\n\n  \n", "no seed tasks found"),
    ("latin1.jsonl", '{"instruction": "caf\xe9", "output": "y"}\n'.encode("latin-1"), ":1: not valid UTF-8"),
    ("binary.jsonl", b"\x00\x01\x02GGUF", ":1: contains NUL bytes"),
    ("bad.csv", "instruction,input\nQ,x\n", ":1: field 'output': missing column"),
    ("bad.csv", "instruction,output\nQ,A,extra\n", ":2: has 3 cells"),
    ("bad.csv", "instruction,output\nQ,A\n,B\n", ":3: field 'instruction': is empty"),
    ("bad.csv", "", "empty CSV"),
    ("bad.csv", 'instruction,output\n"unterminated,A\n', "malformed CSV"),
    ("bad.csv", "instruction,output,output\nQ,A,B\n", "appears more than once"),
    ("qna.yaml", "seed_examples:\n  - question: Q\n", ":2: field 'output': missing"),
    ("qna.yaml", "seed_examples: [\n", "invalid YAML"),
    ("qna.yaml", "version: 2\n", "seed_examples"),
    ("qna.yaml", "seed_examples:\n  - just a string\n", ":2: seed example must be a mapping"),
    ("seeds.txt", "instruction\toutput\n", "unsupported seed file type"),
]


@pytest.mark.parametrize(("filename", "content", "expected"), BAD_INPUTS)
def test_bad_seed_file_is_refused_whole(db, project, tmp_path: Path, capsys, filename, content, expected) -> None:
    seeds.import_drafts(db, project, "existing", read_seed_file(paths.shipped_dir() / "finance.jsonl"))
    before = counts(db)
    path = tmp_path / filename
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    code = main(["--format", "text", "seeds", "import", str(path), "--project", "test"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err, err
    assert str(path) in err
    assert "Traceback" not in err
    assert counts(db) == before


def test_missing_file_and_folder(db, project, tmp_path: Path, capsys) -> None:
    assert main(["--format", "text", "seeds", "import", str(tmp_path / "nope.jsonl"), "--project", "test"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--format", "text", "seeds", "import", str(tmp_path), "--project", "test"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text(_jsonl({"output": "a"}, GOOD, "oops", {"instruction": "Q", "output": 3}))
    from engine.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        read_seed_file(path)
    lines = sorted(p.line for p in info.value.problems)
    assert lines == [1, 3, 4]


def test_csv_and_qna_yaml_import(db, project, tmp_path: Path) -> None:
    csv_path = tmp_path / "s.csv"
    csv_path.write_text(
        "instruction,input,output,task_type\n"
        '"Define ""GFR"".",,Filtration rate.,definition\n'
        "Name a statin.,,Atorvastatin.,\n"
    )
    yaml_path = tmp_path / "qna.yaml"
    yaml_path.write_text(
        "version: 2\ntask_description: clinical QA\ncreated_by: me\nseed_examples:\n"
        "  - question: What does ACE convert?\n    answer: Angiotensin I to angiotensin II.\n"
        "  - context: Metformin lowers hepatic glucose output.\n    question: How does metformin act?\n"
        "    answer: It lowers hepatic glucose output.\n"
    )
    assert main(["--format", "json", "seeds", "import", str(csv_path), "--project", "test"]) == 0
    assert main(["--format", "json", "seeds", "import", str(yaml_path), "--project", "test", "--set", "qna"]) == 0
    found = {s.instruction: s for s in seeds.list_seeds(db, project)}
    assert found['Define "GFR".'].task_type == "definition"
    assert found["Name a statin."].task_type == "general"
    assert found["How does metformin act?"].input == "Metformin lowers hepatic glucose output."
    assert found["What does ACE convert?"].set_name == "qna"


def test_reimport_adds_nothing_twice(db, project) -> None:
    path = str(paths.shipped_dir() / "biomedicine.jsonl")
    assert main(["--format", "json", "seeds", "import", path, "--project", "test"]) == 0
    n = counts(db)["seeds"]
    assert main(["--format", "json", "seeds", "import", path, "--project", "test"]) == 0
    assert counts(db)["seeds"] == n >= 60


def test_cli_subprocess_exit_codes(db, project, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Q"}\n')
    result = run_engine("seeds", "import", str(bad), "--project", "test")
    assert result.returncode == 2
    assert f"{bad}:1: field 'output': missing" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_engine("seeds", "import", str(bad), "--project", "nope")
    assert result.returncode == 2 and "no project named 'nope'" in result.stderr
