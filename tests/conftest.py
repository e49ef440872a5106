from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SELFSPEC_HOME; fakes may be enabled (children inherit the env)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(h))
    monkeypatch.setenv("SELFSPEC_PLUGINS", "tests.fakes")  # registers the fake runtime and embedder
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SELFSPEC_THREADS", "1")
    return h


@pytest.fixture
def db(home: Path):
    from engine.store import open_store

    database = open_store()
    yield database
    database.close()


@pytest.fixture
def project(db):
    from engine.store import projects

    return projects.create(db, "test", "biomedicine", "smollm2-135m-instruct", {"embedder": "fake-hash"})


def run_engine(
    *args: str, env: dict[str, str] | None = None, timeout: int = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m engine --format text ...` as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "engine", "--format", "text", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def counts(db) -> dict[str, int]:
    """Row counts of every table: 'the store is unchanged' means these are equal."""
    tables = ["projects", "seed_sets", "seeds", "documents", "chunks", "chunk_vectors", "models"]
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
