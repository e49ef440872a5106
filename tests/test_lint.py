"""House style is checked, not remembered: ruff on everything, mypy on the two packages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "cmd",
    [
        [sys.executable, "-m", "ruff", "check", "engine", "selfspec_tui", "tests", "bench"],
        [sys.executable, "-m", "mypy", "engine", "selfspec_tui"],
    ],
    ids=["ruff", "mypy"],
)
def test_clean(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
