"""The store under stress: private files, damage, a second writer, a moved home, locks."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import paths
from engine.errors import UserError
from engine.spec.events import to_dict
from tests.helpers import ROOT, run_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- privacy ---------------------------------------------------------------------------------


def test_home_store_logs_and_exports_are_private(tmp_path: Path, monkeypatch) -> None:
    fresh = tmp_path / "fresh" / "home"
    monkeypatch.setenv("SELFSPEC_HOME", str(fresh))
    r = run_engine("project", "create", "priv", "--domain", "medicine", "--base-model", "fake-generator")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "Explain insulin action", "output": "It lowers glucose."}) + "\n")
    assert run_engine("dataset", "import", str(data), "--project", "priv", "--as", "accepted").returncode == 0
    assert run_engine("dataset", "export", "--project", "priv").returncode == 0
    assert mode(fresh) == 0o700
    for name in ("selfspec.db", "selfspec.db-wal", "selfspec.db-shm"):
        if (fresh / name).exists():
            assert mode(fresh / name) & 0o077 == 0, name
    assert mode(fresh / "logs") == 0o700 and mode(fresh / "logs" / "engine.log") & 0o077 == 0
    exports = fresh / "projects" / "priv" / "exports"
    assert mode(exports) == 0o700
    assert all(mode(f) & 0o077 == 0 for f in exports.iterdir())


def test_an_existing_world_readable_store_is_made_private(home: Path) -> None:
    from engine.store import open_store

    open_store().close()
    os.chmod(home / "selfspec.db", 0o644)
    open_store().close()
    assert mode(home / "selfspec.db") == 0o600


# ---- damage ----------------------------------------------------------------------------------


def _filled_store(home: Path, tmp_path: Path) -> Path:
    assert run_engine("project", "create", "dmg", "--domain", "medicine").returncode == 0
    rows = [{"instruction": f"Explain drug number {i} in detail please", "output": "x" * 400} for i in range(300)]
    f = tmp_path / "many.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_engine("dataset", "import", str(f), "--project", "dmg").returncode == 0
    con = sqlite3.connect(home / "selfspec.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return home / "selfspec.db"


def test_damaged_store_is_refused_not_written_and_doctor_explains(home: Path, tmp_path: Path) -> None:
    db = _filled_store(home, tmp_path)
    size = db.stat().st_size
    page = 4096
    rng = random.Random(7)
    with db.open("r+b") as fh:  # random bytes over some pages in the middle
        for p in rng.sample(range(2, size // page - 1), 4):
            fh.seek(p * page + 100)
            fh.write(rng.randbytes(600))
    before = sha(db)
    for args in (
        ["project", "list"],
        ["project", "create", "more", "--domain", "x"],
        ["review", "stats", "--project", "dmg"],
    ):
        r = run_engine(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "damaged" in r.stderr and "doctor" in r.stderr and ".recover" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert sha(db) == before
    r = run_engine("doctor")
    assert r.returncode == 2
    assert "integrity_check" in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_malformed_error_mid_command_is_explained() -> None:
    from engine.store.db import StoreDamaged, explain

    err = explain(sqlite3.DatabaseError("database disk image is malformed"), "/x/selfspec.db")
    assert isinstance(err, StoreDamaged) and "doctor" in str(err)


# ---- busy and read-only -----------------------------------------------------------------------


def test_store_locked_by_another_writer_says_what_to_do(home: Path, monkeypatch) -> None:
    assert run_engine("project", "create", "busy", "--domain", "medicine").returncode == 0
    con = sqlite3.connect(home / "selfspec.db", isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        r = run_engine("project", "create", "second", "--domain", "x", env={"SELFSPEC_BUSY_TIMEOUT_MS": "300"})
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert r.returncode == 2, r.stderr
    assert "busy" in r.stderr and "write lock" in r.stderr and "Traceback" not in r.stderr


def test_read_only_store_message() -> None:
    from engine.store.db import explain

    for text in ("attempt to write a readonly database", "unable to open database file"):
        msg = str(explain(sqlite3.OperationalError(text), "/h/selfspec.db"))
        assert "SELFSPEC_HOME" in msg and "/h/selfspec.db" in msg


def test_read_only_home_exits_2_with_advice(tmp_path: Path, monkeypatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setenv("SELFSPEC_HOME", str(ro))
    assert run_engine("project", "create", "one", "--domain", "x").returncode == 0
    (ro / "selfspec.db-wal").unlink(missing_ok=True)
    (ro / "selfspec.db-shm").unlink(missing_ok=True)
    os.chmod(ro / "selfspec.db", 0o400)
    os.chmod(ro, 0o500)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")  # root ignores permissions: then this test has nothing to show
            probe.unlink()
            pytest.skip("running with permission to write read-only files (root)")
        except PermissionError:
            pass
        r = run_engine("project", "create", "two", "--domain", "x")
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "read-only" in r.stderr or "not writable" in r.stderr or "permission" in r.stderr.lower()
    finally:
        os.chmod(ro, 0o700)
        os.chmod(ro / "selfspec.db", 0o600)


def test_runner_maps_store_errors_in_the_middle_of_a_command(home: Path) -> None:
    from engine import runner

    events = []

    def body(ctx):  # noqa: ANN001
        raise sqlite3.OperationalError("attempt to write a readonly database")

    code = runner.execute(lambda e: events.append(to_dict(e)), "probe", body, record=False)
    assert code == 2
    assert events[-1]["kind"] == "store" and "read-only" in events[-1]["error"]


# ---- paths in the store ----------------------------------------------------------------------


def test_stored_paths_are_relative_to_home(db, project, home: Path) -> None:
    from engine.store import adapters

    folder = paths.project_dir(project.name) / "adapters" / "a1"
    ad = adapters.create(db, project, "a1", {"train": {}}, "f" * 64, 3, str(folder))
    raw = db.execute("SELECT path FROM adapters WHERE id = ?", [ad.id]).fetchone()[0]
    assert raw == "projects/test/adapters/a1"
    assert ad.path == str(folder)
    ex = adapters.start_export(db, ad, str(paths.project_dir(project.name) / "exports" / "a1"))
    adapters.update_export(
        db, ex.id, "done", {"f16": str(paths.project_dir(project.name) / "exports" / "a1" / "m.gguf")}
    )
    raw_files = json.loads(db.execute("SELECT files FROM exports WHERE id = ?", [ex.id]).fetchone()[0])
    assert raw_files == {"f16": "projects/test/exports/a1/m.gguf"}


def test_a_tampered_relative_path_cannot_leave_home(home: Path) -> None:
    with pytest.raises(UserError):
        paths.from_stored("../../etc/passwd")


def test_old_absolute_paths_are_migrated_to_relative(home: Path) -> None:
    from engine.store import open_store
    from engine.store.migrations import m008_locks_relative_paths

    db = open_store()
    from engine.store import projects

    p = projects.create(db, "old", "x", "smollm2-135m-instruct", {})
    absolute = str(home / "projects" / "old" / "adapters" / "v1")
    db.execute(
        "INSERT INTO adapters (project_id, name, base_model, config, fingerprint, examples, path, created_at,"
        " updated_at) VALUES (?, 'v1', 'm', '{}', 'f', 1, ?, 'now', 'now')",
        [p.id, absolute],
    )
    db.execute("DROP TABLE locks")
    m008_locks_relative_paths(db)
    assert db.execute("SELECT path FROM adapters").fetchone()[0] == "projects/old/adapters/v1"


# ---- one writer per unit of work ---------------------------------------------------------------


def test_lock_is_refused_while_held_and_taken_over_when_the_holder_dies(db, project) -> None:
    from engine.store import locks

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db.execute(
            "INSERT INTO locks (project_id, unit, pid, proc_start, command, started_at) VALUES (?, ?, ?, ?, ?, ?)",
            [project.id, "generation", child.pid, locks.proc_start(child.pid), "generate", "2026-01-01T00:00:00"],
        )
        with pytest.raises(locks.AlreadyRunning, match=f"pid {child.pid}"):
            locks.acquire(db, project.id, "generation", "generate")
    finally:
        child.kill()
        child.wait()
    locks.acquire(db, project.id, "generation", "generate")  # the holder is gone: taken over
    assert locks.holders(db, project.id) == {"generation": os.getpid()}
    locks.release(db, project.id, "generation")
    assert locks.holders(db, project.id) == {}


def test_a_reused_pid_does_not_hold_the_lock(db, project) -> None:
    from engine.store import locks

    db.execute(
        "INSERT INTO locks (project_id, unit, pid, proc_start, command, started_at) VALUES (?, ?, ?, ?, ?, ?)",
        [project.id, "training", 1, "123", "train", "2026-01-01T00:00:00"],  # pid 1 runs, but started otherwise
    )
    locks.acquire(db, project.id, "training", "train")


def test_second_generate_is_refused_at_once_then_resumes_after_kill(home: Path) -> None:
    from tests.helpers import make_project, wait_for_rows

    make_project()
    # slow enough to still be running after the three commands below (label answers are scored, not
    # generated, so a fast fake run could finish and free its lock before the delete is tried)
    env = {**os.environ, "SELFSPEC_FAKE_GEN_DELAY": "0.2"}
    args = [sys.executable, "-m", "engine", "--format", "text", "generate", "--project", "t", "--target", "40"]
    first = subprocess.Popen(
        [*args, "--seed", "3"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_rows(home / "selfspec.db", "SELECT count(*) FROM gen_prompts", 2, first)
        start = time.monotonic()
        second = run_engine("generate", "--project", "t")
        assert time.monotonic() - start < 20
        assert second.returncode == 2, second.stderr
        assert f"already running on this project (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr and "IntegrityError" not in second.stderr
        status = run_engine("generate", "--project", "t", "--status")  # reading is never refused
        assert status.returncode == 0
        delete = run_engine("project", "delete", "t", "--yes")
        assert delete.returncode == 2 and "in use" in delete.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = run_engine("generate", "--project", "t", env={"SELFSPEC_FAKE_GEN_DELAY": "0"})
    assert third.returncode == 0, third.stderr
    con = sqlite3.connect(home / "selfspec.db")
    assert con.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
    dupes = con.execute("SELECT count(*) - count(DISTINCT generation_id || '-' || idx) FROM gen_prompts").fetchone()[0]
    assert dupes == 0
