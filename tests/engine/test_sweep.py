"""A sweep of hostile values over every command's file and name arguments.

Each case runs the real CLI in-process (JSON events) and must end with a clear failure (exit 2,
or 3 where good input went in beside bad): never an internal error, never a hang, and the
store passes its integrity check afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from engine.cli import main

DEEP = 60_000


def hostile_files(root: Path) -> dict[str, Path]:
    """Files a careless or hostile user could hand over, by label."""
    root.mkdir(parents=True, exist_ok=True)
    good = json.dumps({"instruction": "Explain insulin action", "output": "It lowers glucose."})
    files = {
        "missing": root / "missing.jsonl",
        "folder": root / "folder",
        "empty": root / "empty.jsonl",
        "binary": root / "binary.jsonl",
        "latin1": root / "latin1.jsonl",
        "nul-line": root / "nul.jsonl",
        "deep-json": root / "deep.jsonl",
        "deep-yaml": root / "deep.yaml",
        "surrogate": root / "surrogate.jsonl",
        "fifo": root / "fifo.jsonl",
        "dev-zero-link": root / "zero.jsonl",
        "broken-link": root / "broken.jsonl",
        "not-json": root / "notjson.jsonl",
        "wrong-types": root / "types.jsonl",
        "huge-line": root / "huge.jsonl",
        "json-array": root / "array.json",
        "csv-ragged": root / "ragged.csv",
    }
    files["folder"].mkdir(exist_ok=True)
    files["empty"].write_text("")
    files["binary"].write_bytes(os.urandom(4096))
    files["latin1"].write_bytes(good.encode() + b"\n" + '{"instruction": "café"}'.encode("latin-1") + b"\n")
    files["nul-line"].write_bytes(good.encode() + b"\n" + b'{"a": "\x00"}\n')
    files["deep-json"].write_text(good + "\n" + "[" * DEEP + "]" * DEEP + "\n")
    files["deep-yaml"].write_text("seed_examples:\n  - question: " + "[" * DEEP + "]" * DEEP + "\n")
    files["surrogate"].write_text(good + '\n{"instruction": "\\udfff bad", "output": "x", "text": "\\ud800"}\n')
    if not files["fifo"].exists():
        os.mkfifo(files["fifo"])
    for name, target in (("dev-zero-link", "/dev/zero"), ("broken-link", root / "nowhere")):
        if not files[name].is_symlink():
            files[name].symlink_to(target)
    files["not-json"].write_text("hello\nworld\n")
    files["wrong-types"].write_text('{"instruction": 5, "output": ["x"], "input": {}, "labels": [], "text": 3}\n')
    files["huge-line"].write_text(json.dumps({"instruction": "x " * 300_000, "output": "y"}) + "\n")
    files["json-array"].write_text("[1, 2, 3]")
    files["csv-ragged"].write_text('instruction,output\n"a,b\n')
    return files


HOSTILE_NAMES = [
    "../../x",
    "/abs/path",
    "a/b",
    "..",
    ".",
    "",
    " ",
    "x" * 300,
    "a\nb",
    "name;rm -rf",
    "UPPER/..",
    "\udcff",
]

FILE_COMMANDS = [
    ["seeds", "validate", "{f}"],
    ["seeds", "import", "{f}", "--project", "sw"],
    ["dataset", "import", "{f}", "--project", "sw"],
    ["corpus", "import", "{f}", "--project", "sw"],
    ["eval", "run", "--project", "sw", "--data", "{f}", "--no-seeds"],
    ["eval", "run", "--project", "sw", "--pubmedqa", "{f}", "--no-seeds"],
    ["models", "add", "{f}"],
    ["tools", "setup", "--sdist", "{f}"],
    ["project", "create", "emb", "--domain", "x", "--embedder", "{f}"],
    ["dataset", "export", "--project", "sw", "--out", "{f}"],
    ["eval", "show", "1", "--project", "sw", "--json", "{f}"],
]

NAME_COMMANDS = [
    ["project", "create", "{n}", "--domain", "x"],
    ["seeds", "import", "{seeds}", "--project", "sw", "--set", "{n}"],
    ["models", "add", "{gguf}", "--name", "{n}"],
    ["train", "--project", "sw", "--name", "{n}"],
    ["train", "--project", "sw", "--resume", "{n}"],
    ["export", "--project", "sw", "--adapter", "{n}"],
    ["adapters", "use", "{n}", "--project", "sw"],
    ["eval", "run", "--project", "sw", "--model", "{n}", "--no-seeds"],
    ["project", "delete", "{n}", "--yes"],
    ["demo", "--project", "{n}", "--examples", "0"],
    ["seeds", "list", "--project", "{n}"],
]


def _run(args: list[str], capsys) -> tuple[int, list[dict]]:  # noqa: ANN001
    code = main(["--format", "json", *args])
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return code, events


def _expect_clean(args: list[str], code: int, events: list[dict], allowed: tuple[int, ...]) -> str:
    last = events[-1] if events else {}
    where = f"{args}: exit {code}, last event {json.dumps(last, ensure_ascii=True)[:300]}"
    assert last.get("kind") != "internal", where
    assert code in allowed, where
    return "ok"


@pytest.mark.slow
def test_sweep_files_and_names(home: Path, tmp_path: Path, capsys) -> None:
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    assert main(["--format", "json", "project", "create", "sw", "--domain", "x", "--embedder", "fake-hash"]) == 0
    seeds = tmp_path / "ok.jsonl"
    seeds.write_text(json.dumps({"instruction": "Name a statin drug", "output": "Atorvastatin"}) + "\n")
    capsys.readouterr()
    files = hostile_files(tmp_path / "hostile")
    store_files = {
        "store": home / "selfspec.db",
        "store-wal": home / "selfspec.db-wal",
        "store-link": tmp_path / "store-link.jsonl",
    }
    store_files["store-link"].symlink_to(store_files["store"])
    tried = 0
    for template in FILE_COMMANDS:
        targets = {**files, **(store_files if "--out" in template or "--json" in template else {})}
        for label, path in targets.items():
            args = [a.replace("{f}", str(path)) for a in template]
            code, events = _run(args, capsys)
            # a good file is allowed to go in beside the bad ones; an output may legitimately be written
            allowed = (0, 2, 3) if label in ("json-array",) and "--out" in template else (2, 3)
            if "--out" in template and label in (
                "missing",
                "empty",
                "huge-line",
                "not-json",
                "json-array",
                "latin1",
                "nul-line",
                "deep-json",
                "deep-yaml",
                "surrogate",
                "wrong-types",
                "binary",
                "csv-ragged",
            ):
                allowed = (0,)  # writing a new or ordinary file is what --out is for
            _expect_clean(args, code, events, allowed)
            tried += 1
    for template in NAME_COMMANDS:
        for name in HOSTILE_NAMES:
            args = [
                a.replace("{n}", name)
                .replace("{seeds}", str(seeds))
                .replace("{gguf}", str(builtin_path(DEFAULT_MODEL)))
                for a in template
            ]
            code, events = _run(args, capsys)
            _expect_clean(args, code, events, (2,))
            tried += 1
    con = sqlite3.connect(home / "selfspec.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in con.execute("SELECT name FROM projects")] == ["sw"]
    assert not [p for p in tmp_path.rglob("data.jsonl") if home not in p.parents]  # nothing written outside home
    con.close()
    print(f"sweep: {tried} hostile inputs")
    assert tried >= len(FILE_COMMANDS) * len(files) + len(NAME_COMMANDS) * len(HOSTILE_NAMES)
