"""Corpus import, embedding, hnswlib index and search (fake embedder, real SQLite and hnswlib)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.stages.context import Context
from engine.stages.corpus import Searcher, index_path
from engine.store import corpus, projects, runs
from tests.helpers import PARAS, ROOT, counts, write_corpus


def import_args(*paths: Path) -> list[str]:
    return ["--format", "json", "corpus", "import", *map(str, paths), "--project", "test"]


def test_import_chunks_embeds_indexes_and_searches(db, project, tmp_path: Path, capsys) -> None:
    folder = write_corpus(tmp_path / "c")
    (folder / "extra.jsonl").write_text(json.dumps({"text": PARAS[1], "title": "warfarin"}) + "\n")
    assert main(import_args(folder)) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    progress = [e for e in events if e["event"] == "progress" and e["stage"] == "embed"]
    assert progress[-1]["done"] == progress[-1]["total"] > 0
    assert {"rate", "eta_s"} <= set(progress[-1])
    c = counts(db)
    assert c["documents"] == 4 and c["chunks"] == c["chunk_vectors"] > 4
    docs = corpus.list_documents(db, project)
    assert any(d.source.endswith("extra.jsonl:1") and d.title == "warfarin" for d in docs)
    hits = Searcher(Context(db=db, emit=lambda e: None, project=project)).search("warfarin INR clotting", 3)
    assert "Warfarin" in hits[0].chunk.text
    assert hits[0].score >= hits[-1].score
    assert hits[0].chunk.source


def test_reimport_is_idempotent_and_incremental(db, project, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "c", n_files=2)
    assert main(import_args(folder)) == 0
    first = counts(db)
    assert main(import_args(folder)) == 0
    assert counts(db) == first
    more = write_corpus(tmp_path / "more", n_files=1, paras=3)
    (more / "doc0.md").write_text("A brand new note about gout and uric acid.\n")
    assert main(import_args(more)) == 0
    after = counts(db)
    assert after["documents"] == first["documents"] + 1
    searcher = Searcher(Context(db=db, emit=lambda e: None, project=project))
    assert len(searcher.index) == after["chunks"]
    assert "gout" in searcher.search("gout uric acid", 1)[0].chunk.text


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.txt", b"", "empty file"),
    ("spaces.md", b"   \n\n\t\n", "empty file"),
    ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "not valid UTF-8"),
    ("blob.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary file"),
    ("bad.jsonl", b"{not json}\n", ":1: invalid JSON"),
    ("notext.jsonl", b'{"body": "x"}\n', ":1: field 'text': missing"),
    ("numtext.jsonl", b'{"text": 42}\n', "must be text, got int"),
    ("emptytext.jsonl", b'{"text": "  "}\n', "field 'text': is empty"),
    ("array.jsonl", b"[1, 2]\n", "expected a JSON object"),
    ("image.png", b"\x89PNG", "unsupported file type"),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
def test_bad_file_alone_changes_nothing(db, project, tmp_path: Path, capsys, name, content, expected) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = counts(db)
    assert main(["--format", "text", "corpus", "import", str(path), "--project", "test"]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err and "Traceback" not in err
    assert counts(db) == before


def test_unreadable_file_is_skipped_and_reported(db, project, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = write_corpus(tmp_path / "c", n_files=2, paras=2)
    locked = folder / "doc1.md"
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == locked:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert main(["--format", "text", "corpus", "import", str(folder), "--project", "test"]) == 3
    assert f"{locked}: cannot read: Permission denied" in capsys.readouterr().out
    assert counts(db)["documents"] == 1


def test_bad_files_are_skipped_and_the_rest_imported(db, project, tmp_path: Path, capsys) -> None:
    folder = write_corpus(tmp_path / "mixed", n_files=2, paras=3)
    for name, content, _ in BAD_FILES:
        if not name.endswith(".png"):
            (folder / name).write_bytes(content)
    (folder / "half.jsonl").write_text(json.dumps({"text": PARAS[2]}) + "\n{broken\n")
    (folder / ".hidden.md").write_text("never imported")
    code = main(["--format", "text", "corpus", "import", str(folder), "--project", "test"])
    out = capsys.readouterr()
    assert code == 3  # finished, with skipped inputs
    assert counts(db)["documents"] == 3
    assert "half.jsonl:2: invalid JSON" in out.out
    assert "latin1.txt" in out.out and "blob.txt" in out.out
    assert not any("hidden" in d.source for d in corpus.list_documents(db, project))


def test_missing_path_and_unknown_project(db, project, tmp_path: Path, capsys) -> None:
    assert main(["--format", "text", "corpus", "import", str(tmp_path / "nowhere"), "--project", "test"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["--format", "text", "corpus", "search", "x", "--project", "ghost"]) == 2
    assert "no project named 'ghost'" in capsys.readouterr().err


def test_lost_or_corrupt_index_is_rebuilt_from_the_store(db, project, tmp_path: Path) -> None:
    assert main(import_args(write_corpus(tmp_path / "c"))) == 0
    path = index_path(project)
    path.unlink()
    searcher = Searcher(Context(db=db, emit=lambda e: None, project=project))
    assert len(searcher.index) == counts(db)["chunks"] and path.is_file()
    path.write_bytes(b"garbage")
    searcher = Searcher(Context(db=db, emit=lambda e: None, project=project))
    assert len(searcher.index) == counts(db)["chunks"]
    assert main(["--format", "json", "corpus", "index", "--project", "test", "--rebuild"]) == 0


def _spawn_import(folder: Path, delay: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SELFSPEC_FAKE_EMBED_DELAY": delay}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *import_args(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_embedding(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["stage"] == "embed" and event["done"] > 0:
            return
        assert time.monotonic() < deadline
    pytest.fail("the import ended before embedding started")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_import_resumes_without_loss_or_duplicates(db, project, tmp_path: Path, sig) -> None:
    projects.update_settings(db, "test", {"chunk_tokens": 24, "chunk_overlap": 4})
    folder = write_corpus(tmp_path / "big", n_files=6, paras=40)
    proc = _spawn_import(folder, "0.3")
    _wait_for_embedding(proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    partial = counts(db)
    assert 0 < partial["chunk_vectors"] < partial["chunks"]
    (run,) = runs.list_runs(db, project.id)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
        assert '"interrupted"' in out and run.status == "interrupted"
    else:
        assert run.status == "running"  # until someone notices the pid is gone
    assert main(import_args(folder)) == 0
    resumed = counts(db)
    statuses = [r.status for r in runs.list_runs(db, project.id)]
    assert statuses == ["finished", "interrupted"]

    # an uninterrupted import of the same folder into a fresh project gives the same result
    other = projects.create(
        db,
        "fresh",
        "biomedicine",
        "smollm2-135m-instruct",
        {"embedder": "fake-hash", "chunk_tokens": 24, "chunk_overlap": 4},
    )
    assert main(["--format", "json", "corpus", "import", str(folder), "--project", "fresh"]) == 0
    texts = lambda p: sorted(r[0] for r in db.execute("SELECT text FROM chunks WHERE project_id = ?", [p.id]))  # noqa: E731
    assert texts(project) == texts(other)
    assert resumed["chunk_vectors"] == resumed["chunks"] == len(texts(project))
    assert len(Searcher(Context(db=db, emit=lambda e: None, project=project)).index) == len(texts(project))
