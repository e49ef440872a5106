"""The TUI never loads the ML stack; the engine never loads the front end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

HEAVY = ["torch", "transformers", "peft", "bitsandbytes", "llama_cpp", "sentence_transformers", "hnswlib"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_front_end_and_store_import_no_ml_stack() -> None:
    loaded = _modules_after("import selfspec_tui.app, selfspec_tui.__main__, engine.store, engine.schema")
    assert "textual" in loaded  # the probe really imported the front end
    assert not [m for m in HEAVY if m in loaded]
    assert not [m for m in loaded if m.startswith(("engine.stages", "engine.backends"))]


def test_engine_cli_imports_no_front_end_or_ml_stack_at_start() -> None:
    loaded = _modules_after("import engine.cli, engine.runner")
    assert not [m for m in loaded if m.split(".")[0] in ("textual", "selfspec_tui", "rich")]
    assert not [m for m in HEAVY if m in loaded]


def test_engine_and_front_end_start_without_pandas() -> None:
    """sqlite-utils would import pandas (~0.4 s of each engine start) if the packages let it."""
    for code in ("import engine.cli, engine.runner, engine.store", "import selfspec_tui.app"):
        loaded = _modules_after(code)
        assert "sqlite_utils" in loaded and "pandas" not in loaded, code
    assert "pandas" in _modules_after("import engine.cli, engine.store; import pandas")  # still importable


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(ROOT / ".venv" / "bin")) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed (pip install .[dev])")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout  # + pure stage declarations, + engine layers (no cycles)


def test_no_product_module_names_a_fake() -> None:
    """Test doubles live in tests/ and arrive as a plugin (SELFSPEC_PLUGINS); the product never names one."""
    offenders = []
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "selfspec_tui").rglob("*.py")]:
        text = path.read_text(encoding="utf-8").lower()
        if any(word in text for word in ("fake", "selfspec_test_fakes", "tests.")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
