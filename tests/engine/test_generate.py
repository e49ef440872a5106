"""Generation with the fake generator: pipeline, provenance, drop reasons, errors, cancel and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import Event
from engine.spec.events import to_dict
from engine.stages.context import Context, Interrupted
from engine.stages.generate import GenerationRun, open_generation
from engine.store import generation, open_store, projects
from tests.fakes import FakeGenerator
from tests.helpers import ROOT, dump, make_project, run_engine, wait_for_rows


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(to_dict(event))  # what a JSON reader of the engine sees


def _ctx(db, name: str = "t") -> tuple[Context, Recorder]:
    rec = Recorder()
    return Context(db=db, emit=rec, project=projects.get(db, name)), rec


def test_pipeline_end_to_end(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "25", "--seed", "3", "--grounded", "off")
    assert r.returncode == 0, r.stderr
    assert "brainstorm:" in r.stderr and "respond:" in r.stderr and "ETA" in r.stderr
    db = open_store()
    gen = generation.latest(db, projects.get(db, "t"))
    assert gen is not None and gen.phase == "done" and gen.config["generate"]["seed"] == 3
    kept = generation.candidates(db, gen.id, "kept")
    dropped = generation.candidates(db, gen.id, "dropped")
    assert len(kept) == 25 and generation.count_examples(db, gen.id) == 25
    reasons = {c.reason for c in dropped}
    assert "near_duplicate" in reasons
    assert len(reasons & {"needs_other_modality", "asks_for_program", "too_short"}) >= 2
    assert all(c.detail for c in dropped if c.reason == "near_duplicate")
    assert all(c.detail.startswith("ROUGE-L ") for c in dropped if c.reason == "near_duplicate")
    by_block: dict[int, set[tuple[int, ...]]] = {}
    for e in generation.examples(db, projects.get(db, "t")):
        p = e.provenance
        assert p["template"] == "ss-v4" and p["model"] == "fake-generator" and p["retrieval"] is True
        by_block.setdefault(p["response_demo_block"], set()).add(tuple(p["response_demo_ids"]))
        assert len(p["brainstorm_seed_ids"]) == 3 and len(p["response_demo_ids"]) == 5
        assert p["brainstorm_sampling"] == {"temperature": 1.0, "top_p": 0.98, "max_tokens": 768}
        assert p["response_sampling"]["temperature"] == 0.0
        assert len(e.passages) == 5 and all({"chunk_id", "score", "source"} <= set(x) for x in e.passages)
        if e.task_type == "yes_no_qa":  # its seeds answer yes/no/maybe: answered by label, bias removed
            assert e.output in ("yes", "no", "maybe") and set(p["label_logprobs"]) == {"yes", "no", "maybe"}
        else:
            assert e.output.startswith("According to [1]") and "label_logprobs" not in p
        assert e.status == "pending"
    # one demonstration set per block of 16 answers (their shared prefix is evaluated once)
    assert sorted(by_block) == [0, 1] and all(len(sets) == 1 for sets in by_block.values())
    assert len({next(iter(sets)) for sets in by_block.values()}) > 1
    instructions = [c.instruction.lower() for c in kept]
    assert len(set(instructions)) == len(instructions)
    listing = run_engine("examples", "list", "--project", "t", "--dropped")
    assert listing.returncode == 0 and "near_duplicate" in listing.stdout
    status = run_engine("generate", "--project", "t", "--status")
    assert status.returncode == 0 and "done" in status.stdout


def test_without_retrieval_needs_no_corpus(home: Path) -> None:
    make_project(corpus=False)
    r = run_engine("generate", "--project", "t", "--target", "5", "--seed", "1")
    assert r.returncode == 2 and "corpus is empty" in r.stderr and "--no-retrieval" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_engine("generate", "--project", "t", "--target", "5", "--seed", "1", "--no-retrieval", "--new")
    assert r.returncode == 0, r.stderr
    db = open_store()
    rows = db.execute("SELECT passages, output, provenance FROM examples").fetchall()
    assert len(rows) == 5 and all(json.loads(p) == [] for p, _, _ in rows)
    # a free answer cites no passage; a yes/no/maybe task is answered by label
    assert all(o.startswith("According to general knowledge") or o in ("yes", "no", "maybe") for _, o, _ in rows)
    assert all(json.loads(v)["retrieval"] is False for _, _, v in rows)


def test_no_seeds_and_bad_options_are_clear_errors(home: Path) -> None:
    assert run_engine("project", "create", "e", "--domain", "x", "--base-model", "fake-generator").returncode == 0
    r = run_engine("generate", "--project", "e", "--target", "3", "--no-retrieval")
    assert r.returncode == 2 and "no seed tasks" in r.stderr
    make_project()
    for args, needle in [
        (["--top-p", "0"], "--top-p"),
        (["--temperature", "-1"], "--temperature"),
        (["--k", "0"], "--k:"),  # the flag typed (this said --k-seeds, which is no flag)
        (["--device", "tpu"], "--device"),
        (["--target", "0"], "--target"),
        (["--seed-set", "nope"], "no seed set 'nope'"),
        (["--resume", "99"], "no generation with id 99"),
    ]:
        r = run_engine("generate", "--project", "t", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr


def test_resume_extends_and_refuses_other_settings(home: Path) -> None:
    make_project()
    r = run_engine("generate", "--project", "t", "--target", "30", "--seed", "1", "--max-prompts", "2")
    assert r.returncode == 0
    assert "stopped after 2 prompts" in r.stderr
    db = open_store()
    assert db.execute("SELECT phase FROM generations").fetchone()[0] == "done"  # the budget ends brainstorming
    # a bigger budget and target continue the same generation where it stopped
    r = run_engine("generate", "--project", "t", "--resume", "1", "--target", "40", "--max-prompts", "6")
    assert r.returncode == 0, r.stderr
    assert [i for (i,) in db.execute("SELECT idx FROM gen_prompts ORDER BY idx")] == list(range(6))
    assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 1
    with db.conn:
        db.execute("UPDATE generations SET phase = 'brainstorm'")  # as if it were cut short
    r = run_engine("generate", "--project", "t", "--temperature", "0.5")
    assert r.returncode == 2 and "temperature" in r.stderr and "--new" in r.stderr
    r = run_engine("generate", "--project", "t", "--new", "--temperature", "0.5", "--target", "3")
    assert r.returncode == 0, r.stderr
    assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 2


def _run_in_process(db, target: int, seed: int, stop_in: str = "", batch: int = 1) -> list[Event]:
    """Run a generation with the fake; with `stop_in`, request a stop on that stage's third call."""
    ctx, rec = _ctx(db)
    gen = open_generation(ctx, {"seed": seed, "max_prompts": 500, "demo_block": 4}, target, None, False)
    job = GenerationRun(ctx, gen)
    fake = FakeGenerator()
    fake.batch_size = batch
    calls = [0]
    original = fake.generate

    def counting(prompts, sampling, seeds, cancel, watch=None):  # type: ignore[no-untyped-def]
        stage = "brainstorm" if "List of tasks:" in prompts[0] else "respond"
        calls[0] += stage == stop_in
        if calls[0] > 2:
            ctx.stop_flag.set()
        return original(prompts, sampling, seeds, cancel, watch)

    fake.generate = counting  # type: ignore[method-assign]
    job.generator = fake
    try:
        job.run()
    except Interrupted:
        pass
    return rec.events


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("stop_in", ["brainstorm", "respond"])
def test_stop_and_resume_equals_uninterrupted(
    home: Path, tmp_path: Path, monkeypatch, batch: int, stop_in: str
) -> None:
    homes = {}
    for label in ("straight", "resumed"):
        h = tmp_path / label
        h.mkdir()
        monkeypatch.setenv("SELFSPEC_HOME", str(h))
        make_project()
        db = open_store()
        if label == "resumed":
            _run_in_process(db, 20, 9, stop_in=stop_in, batch=batch)
            assert db.execute("SELECT phase FROM generations").fetchone()[0] == stop_in
        events = _run_in_process(db, 20, 9, batch=batch)
        assert any(e["event"] == "item" and e["kind"] == "example" for e in events)
        db.close()
        homes[label] = dump(h / "selfspec.db")
    assert homes["straight"] == homes["resumed"]
    assert len(homes["straight"]["examples"]) == 20


def test_item_events_and_progress_figures(home: Path) -> None:
    make_project()
    events = _run_in_process(open_store(), 6, 2)
    progress = [e for e in events if e["event"] == "progress" and e["stage"] == "brainstorm"]
    last = progress[-1]
    assert last["done"] == 6 and last["total"] == 6
    assert last["counters"]["kept"] == 6 and last["counters"]["prompts"] >= 2
    assert sum(last["dropped"].values()) == last["counters"]["dropped"]
    tasks = [e for e in events if e["event"] == "item" and e["kind"] == "task"]
    assert sum(e["status"] == "kept" for e in tasks) == 6
    assert all(e["reason"] for e in tasks if e["status"] == "dropped")


class Garbage(FakeGenerator):
    """Binary noise, empty strings, and huge runs: the pipeline must record reasons, not crash."""

    def generate(self, prompts, sampling, seeds, cancel, watch=None):  # type: ignore[no-untyped-def]
        from engine.backends.types import Completion

        outs = []
        for s in seeds:
            kind = s % 4
            text = ["", "\x00\x01\x02 ###", "Task 4\nInstruction:", "Instruction: " + "zzz " * 900][kind]
            outs.append(Completion(text, "length" if kind == 3 else "stop", 10, 5))
        return outs


def test_garbage_model_output_is_recorded_not_fatal(home: Path) -> None:
    make_project()
    db = open_store()
    ctx, _ = _ctx(db)
    gen = open_generation(ctx, {"seed": 4, "max_prompts": 12}, 5, None, False)
    job = GenerationRun(ctx, gen)
    job.generator = Garbage()
    summary = job.run()
    assert summary["kept_tasks"] == 0 and summary["prompts"] == 12
    assert set(summary["dropped_by_reason"]) <= {
        "no_task_in_output",
        "non_printable",
        "no_instruction",
        "truncated",
        "non_text",
        "too_long",
        "too_short",  # grounded: a garbage line after "Instruction:" is read as a (too short) instruction
    }
    assert sum(summary["dropped_by_reason"].values()) >= 12


@pytest.mark.parametrize(
    ("sql", "n"),
    [("SELECT count(*) FROM gen_prompts", 4), ("SELECT count(*) FROM examples", 3)],
    ids=["kill-in-brainstorm", "kill-in-respond"],
)
def test_kill_9_and_resume_equals_uninterrupted(home: Path, tmp_path: Path, monkeypatch, sql: str, n: int) -> None:
    results = {}
    for label in ("straight", "killed"):
        h = tmp_path / label
        h.mkdir()
        monkeypatch.setenv("SELFSPEC_HOME", str(h))
        make_project()
        args = [
            sys.executable,
            "-m",
            "engine",
            "generate",
            "--project",
            "t",
            "--target",
            "12",
            "--seed",
            "21",
            "--demo-block",
            "4",
        ]
        if label == "killed":
            env = {**os.environ, "SELFSPEC_FAKE_GEN_DELAY": "0.05"}
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_rows(h / "selfspec.db", sql, n, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            r = run_engine("generate", "--project", "t")  # no options: resumes the unfinished generation
            assert r.returncode == 0, r.stderr
            assert "resuming generation 1" in r.stderr
            runs = sqlite3.connect(h / "selfspec.db").execute("SELECT status FROM runs WHERE stage = 'generate'")
            assert [s for (s,) in runs] == ["interrupted", "finished"]
        else:
            assert subprocess.run(args, cwd=ROOT, capture_output=True).returncode == 0
        results[label] = dump(h / "selfspec.db")
    assert results["straight"] == results["killed"]
    assert len(results["killed"]["examples"]) == 12


def test_sigterm_cancels_cleanly_then_resumes(home: Path) -> None:
    make_project()
    env = {**os.environ, "SELFSPEC_FAKE_GEN_DELAY": "0.05"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "generate", "--project", "t", "--target", "40", "--seed", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    wait_for_rows(home / "selfspec.db", "SELECT count(*) FROM gen_prompts", 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert json.loads(out.strip().splitlines()[-1])["event"] == "interrupted"
    db = open_store()
    assert db.execute("SELECT status FROM runs WHERE stage = 'generate'").fetchone()[0] == "interrupted"
    before = db.execute("SELECT count(*) FROM gen_prompts").fetchone()[0]
    r = run_engine("generate", "--project", "t")
    assert r.returncode == 0
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 40
    assert db.execute("SELECT count(*) FROM gen_prompts").fetchone()[0] > before


def test_threads_never_exceed_free_cores(monkeypatch) -> None:
    from engine import cpu

    monkeypatch.delenv("SELFSPEC_THREADS", raising=False)
    usable = len(os.sched_getaffinity(0))
    assert 1 <= cpu.free_cores() <= usable
    monkeypatch.setattr(cpu, "_busy_ticks", iter([(0, 100), (100, 200)]).__next__)  # every core busy
    assert cpu.free_cores(0) == 1
    monkeypatch.setattr(cpu, "_busy_ticks", iter([(0, 100), (0, 200)]).__next__)  # all idle
    assert cpu.free_cores(0) == usable
    total = os.cpu_count() or usable
    monkeypatch.setattr(cpu, "_busy_ticks", iter([(0, 100), (100 // total, 200)]).__next__)  # one core busy
    assert cpu.free_cores(0) == max(1, min(usable, total - 1))
    monkeypatch.setenv("SELFSPEC_THREADS", "7")
    assert cpu.free_cores(0) == 7


def test_an_unknown_or_unfit_backend_is_refused_before_anything_is_stored(home: Path) -> None:
    make_project()
    for backend, needle in [("nope", "unknown runtime"), ("llama.cpp", "cannot run 'fake' models")]:
        r = run_engine("generate", "--project", "t", "--target", "2", "--backend", backend)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    db = open_store()
    assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 0
    db.close()
    assert run_engine("generate", "--project", "t", "--target", "2", "--backend", "fake").returncode == 0


def test_cost_estimate_from_the_measured_rate(home: Path) -> None:
    from engine.spec.generate import cost_text

    assert cost_text(0.1, 5000) == "about 13.9 h at 0.10 examples/s; 200 take 33 min"
    assert cost_text(0.01, 100, done=40) == "about 1.7 h at 0.60 examples/min for the 60 still to make"
    assert cost_text(None, 10).startswith("no generation rate measured")
    make_project()
    first = run_engine("generate", "--project", "t", "--target", "6", "--seed", "1")
    assert first.returncode == 0 and "target 6: no generation rate measured" in first.stderr
    db = open_store()
    rate = generation.measured_rate(db, "fake-generator")
    assert rate is not None and rate > 0
    assert generation.measured_rate(db, "fake-generator", "llama.cpp") is None  # another runtime: not measured
    again = run_engine("generate", "--project", "t", "--target", "500", "--new", "--seed", "2", "--max-prompts", "1")
    assert again.returncode == 0 and "target 500: about " in again.stderr and "examples/" in again.stderr
