from __future__ import annotations

import sqlite3

import pytest

from engine import paths
from engine.errors import UserError
from engine.store import open_store, projects, runs, seeds
from engine.store.migrations import migrations


def test_pragmas_and_migrations(db) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert not migrations.pending(db)
    applied = [m.name for m in migrations.applied(db)]
    assert applied[0] == "m001_initial"
    for table in ("projects", "seed_sets", "seeds", "documents", "chunks", "runs", "models"):
        assert db[table].exists()


def test_reopen_applies_nothing_twice(home) -> None:
    first = open_store()
    first.close()
    again = open_store()
    assert len(migrations.applied(again)) == len(migrations._migrations)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "Upper", "", "x" * 64, "a b", "é", "a\\b", "/abs"])
def test_project_names_cannot_escape_home(db, name: str) -> None:
    with pytest.raises(UserError):
        projects.create(db, name, "biomedicine", "m")
    assert projects.list_all(db) == []


def test_project_dir_stays_inside_home(home) -> None:
    d = paths.project_dir("ok-name_1")
    assert d.parent == (home / "projects").resolve()


def test_project_lifecycle_and_cascade(db, home) -> None:
    p = projects.create(db, "bio", "biomedicine", "smollm2-135m-instruct")
    assert (home / "projects" / "bio").is_dir()
    with pytest.raises(UserError, match="already exists"):
        projects.create(db, "bio", "biomedicine", "m")
    seeds.add_seed(db, p, "manual", {"instruction": "Define anemia.", "output": "Low hemoglobin."})
    assert projects.summary(db, p)["seeds"] == 1
    projects.delete(db, "bio")
    assert not (home / "projects" / "bio").exists()
    assert db.execute("SELECT count(*) FROM seeds").fetchone()[0] == 0
    with pytest.raises(UserError, match="no project"):
        projects.get(db, "bio")


def test_multi_row_change_is_atomic(db, project) -> None:
    from engine.schema import SeedDraft

    good = SeedDraft("Q1", "", "A1", "general")

    class Boom(Exception):
        pass

    def drafts():
        yield good
        raise Boom

    with pytest.raises(Boom):
        seeds.import_drafts(db, project, "set", drafts())
    assert seeds.list_sets(db, project) == []
    assert db.execute("SELECT count(*) FROM seeds").fetchone()[0] == 0


def test_seed_edit_validation_and_duplicates(db, project) -> None:
    a = seeds.add_seed(db, project, "s", {"instruction": "Q1", "output": "A1"})
    seeds.add_seed(db, project, "s", {"instruction": "Q2", "output": "A2"})
    with pytest.raises(UserError):
        seeds.update_seed(db, a.id, {"instruction": "Q2", "output": "x"})
    with pytest.raises(UserError):
        seeds.update_seed(db, a.id, {"instruction": "", "output": "x"})
    edited = seeds.update_seed(db, a.id, {"instruction": "Q1b", "output": "A1b", "task_type": "open_qa"})
    assert (edited.instruction, edited.task_type) == ("Q1b", "open_qa")
    assert [s.instruction for s in seeds.list_seeds(db, project, task_type="open_qa")] == ["Q1b"]
    assert [s.instruction for s in seeds.list_seeds(db, project, text="Q2")] == ["Q2"]
    seeds.delete_seed(db, a.id)
    assert len(seeds.list_seeds(db, project)) == 1


def test_dead_runs_are_reaped(db, project) -> None:
    run_id = runs.start(db, project.id, "corpus import", {})
    db.execute("UPDATE runs SET pid = 999999999 WHERE id = ?", [run_id])
    assert runs.reap_dead(db) == 1
    run = runs.get(db, run_id)
    assert run is not None and run.status == "interrupted"


def test_foreign_keys_are_enforced(db) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO seed_sets (project_id, name, created_at) VALUES (999, 'x', 'now')")


def test_corrupt_database_is_a_clear_error(home, capsys) -> None:
    from engine.cli import main

    (home / "selfspec.db").write_bytes(b"this is not sqlite" * 100)
    assert main(["--format", "text", "project", "list"]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "selfspec.db" in err and "Traceback" not in err


def test_unwritable_home_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    from engine.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SELFSPEC_HOME", str(blocker / "home"))
    assert main(["--format", "text", "project", "list"]) == 2
    assert "cannot create the home folder" in capsys.readouterr().err


def test_tui_entry_reports_a_broken_store(home, capsys) -> None:
    from selfspec_tui.__main__ import main

    (home / "selfspec.db").write_bytes(b"garbage" * 200)
    assert main([]) == 2
    assert "is damaged" in capsys.readouterr().err


def test_zombie_run_counts_as_dead(db, project) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    import time

    deadline = time.monotonic() + 10
    while not open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_id = runs.start(db, project.id, "corpus import", {})
    db.execute("UPDATE runs SET pid = ? WHERE id = ?", [child.pid, run_id])
    assert runs.reap_dead(db) == 1  # exited but not yet reaped by its parent
    child.wait()
