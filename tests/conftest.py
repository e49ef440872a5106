"""Fixtures for every test (helpers are in helpers.py, the test plugin in fakes.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ROOT, build_tiny_llama


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


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """A 2-layer random Llama with its own tokenizer, built once per session."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def tiny_project(db, tiny_folder):
    """Project "tp" on the tiny Llama with 24 examples, 20 of them accepted (training tests)."""
    from engine.stages.models import register
    from engine.store import projects, review
    from engine.store.review import Filter
    from tests.helpers import fill

    register(db, tiny_folder, "tiny")
    p = projects.create(db, "tp", "biomedicine", "tiny", {})
    ids = fill(db, p, 24, seed=3)
    review.set_status(db, p, Filter(ids=tuple(ids[:20])), "accepted", "x")
    return p
