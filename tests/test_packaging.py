"""`pip install .` builds a real wheel that carries the seeds, demo corpus and stylesheet."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("selfspec_tui-*.whl")
    return path


def test_wheel_ships_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "engine/_shipped/biomedicine.jsonl" in names
    assert "engine/_shipped/finance.jsonl" in names
    assert "engine/_shipped/general_eval.jsonl" in names
    assert len([n for n in names if n.startswith("engine/_shipped/corpus/biomedicine/")]) >= 10
    assert "selfspec_tui/app.tcss" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_installed_wheel_finds_its_shipped_data(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "from engine import paths; from engine.stages.seeds_io import read_seed_file;"
        "d = paths.shipped_dir(); print(d, len(read_seed_file(d / 'finance.jsonl')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    where, n = out.stdout.split()
    assert where == str(target / "engine" / "_shipped") and int(n) >= 60
