"""Evaluation sets, leak-free few-shot pools, held-out seeds, GGUF vs HF scoring, and the `eval` CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from engine import paths
from engine.errors import UserError, ValidationError
from engine.stages import eval_data
from engine.stages.eval_data import EvalItem, EvalSet
from engine.stages.seeds_io import read_seed_file
from engine.store import evals, projects, review, seeds
from engine.store.review import Filter
from tests.helpers import ROOT, fill, run_engine, talk_project

PUBMEDQA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"
needs_pubmedqa = pytest.mark.skipif(not PUBMEDQA.exists(), reason="../shared/data/pubmedqa is not here")


@needs_pubmedqa
def test_pubmedqa_loader_reads_the_dev_file() -> None:
    ev = eval_data.load_pubmedqa(PUBMEDQA)
    assert len(ev.items) == 500 and ev.classification and ev.labels == ("yes", "no", "maybe")
    item = ev.items[0]
    assert item.output in ev.labels and item.input and "yes, no or maybe" in item.instruction
    sub = eval_data.limited(ev, 20)
    assert len(sub.items) == 20 and sub.items == eval_data.limited(ev, 20).items  # the same subset every time


def test_pubmedqa_and_jsonl_problems_name_the_place(tmp_path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"1": {"QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}))
    with pytest.raises(ValidationError, match=r"item 1: field 'final_decision': 'perhaps' is not yes, no or maybe"):
        eval_data.load_pubmedqa(bad)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="expected an object of PubMedQA items"):
        eval_data.load_pubmedqa(tmp_path / "list.json")
    with pytest.raises(UserError, match="no such file"):
        eval_data.load_file(tmp_path / "missing.jsonl")
    lines = [
        '{"instruction": "a", "output": "yes", "labels": ["yes", "no"]}',
        "{not json",
        '{"instruction": "", "output": "x"}',
        '{"instruction": "b", "output": "perhaps", "labels": ["yes", "no"]}',
        '{"instruction": "c", "output": "yes", "labels": ["yes"]}',
        '{"instruction": "d", "output": "yes", "colour": 1}',
        '["a list"]',
    ]
    f = tmp_path / "set.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError) as err:
        eval_data.load_jsonl(f)
    text = str(err.value)
    for expected in (
        f"{f}:2: invalid JSON",
        f"{f}:3: field 'instruction': is empty",
        f"{f}:4: field 'output': 'perhaps' is not one of the labels",
        f"{f}:5: field 'labels': a label set needs at least two labels",
        f"{f}:6: field 'colour': unknown field",
        f"{f}:7: expected an object",
    ):
        assert expected in text, text
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        '{"instruction": "a", "output": "yes", "labels": ["yes", "no"]}\n{"instruction": "b", "output": "x"}\n'
    )
    with pytest.raises(ValidationError, match="all classification or all free-form"):
        eval_data.load_jsonl(mixed)
    free = tmp_path / "free.jsonl"
    free.write_text('{"instruction": "Define sepsis.", "output": "A dysregulated response to infection."}\n')
    assert not eval_data.load_jsonl(free).classification


def test_the_shipped_off_domain_set_is_balanced() -> None:
    ev = eval_data.general_set()
    assert ev.off_domain and ev.classification and len(ev.items) >= 40
    assert sum(i.output == "yes" for i in ev.items) == sum(i.output == "no" for i in ev.items)


def test_few_shot_pool_never_holds_an_evaluated_item(db, project) -> None:
    ids = fill(db, project, 30, seed=5)
    review.set_status(db, project, Filter(ids=tuple(ids)), "accepted", "x")
    pool_all = eval_data.few_shot_pool(db, project, [])
    assert len(pool_all) == 30
    # evaluate three of the training examples themselves (one with different case and spacing)
    taken = pool_all[:3]
    items = [EvalItem("e0", taken[0].instruction, taken[0].input, taken[0].output, ())]
    items.append(EvalItem("e1", "  " + taken[1].instruction.upper() + " ", taken[1].input, "x", ()))
    items.append(EvalItem("e2", taken[2].instruction, "another input entirely", "x", ()))
    sets = [EvalSet("s", tuple(items))]
    pool = eval_data.few_shot_pool(db, project, sets)
    assert len(pool) == 27 and not {p.key for p in pool} & {t.key for t in taken}
    banned = {eval_data._signature(i.instruction, i.input) for i in items}
    for item in items:
        demos = eval_data.demonstrations(pool, item, 5)
        assert len(demos) == 5 and demos == eval_data.demonstrations(pool, item, 5)  # fixed per item
        assert all(eval_data._signature(d.instruction, d.input) not in banned for d in demos)
    assert eval_data.demonstrations(pool, items[0], 0) == []


def test_held_out_seeds_stay_out_of_generation(db, project) -> None:
    from engine.stages.context import Context
    from engine.stages.gen_setup import seed_pool

    seeds.import_drafts(db, project, "bio", read_seed_file(paths.shipped_dir() / "biomedicine.jsonl"))
    total = len(seeds.list_seeds(db, project))
    out = eval_data.reserve_seeds(db, project, 0.2)
    held = seeds.held_out(db, project)
    assert (
        out["held_out"] == len(held)
        and abs(len(held) - total * 0.2) <= 6
        and out["for_generation"] == total - len(held)
    )
    # stratified: a fifth of each kind of task (within rounding)
    from collections import Counter

    kinds = lambda rows: Counter(  # noqa: E731
        "ynm" if s.output.strip(". ").lower() in ("yes", "no", "maybe") else s.task_type for s in rows
    )
    every, kept_out = kinds(seeds.list_seeds(db, project)), kinds(held)
    assert all(abs(kept_out[k] - n * 0.2) <= 0.5 for k, n in every.items())
    ctx = Context(db, lambda e: None, project)
    pool = seed_pool(ctx, "")
    assert len(pool) == total - len(held) and not {s.id for s in pool} & {s.id for s in held}
    sets = eval_data.held_out_seed_sets(db, project)
    assert sum(len(s.items) for s in sets) == len(held)
    assert eval_data.reserve_seeds(db, project, 0.2)["held_out"] == len(held)  # the same seeds again
    assert eval_data.reserve_seeds(db, project, 0.0)["held_out"] == 0 and not seeds.held_out(db, project)
    with pytest.raises(UserError, match="fraction"):
        eval_data.reserve_seeds(db, project, 1.0)


@pytest.mark.slow
def test_gguf_and_hf_scoring_agree_on_the_same_model() -> None:
    from engine.backends.runtimes.hf import TransformersScorer
    from engine.backends.runtimes.llamacpp import LlamaCppScorer
    from engine.backends.types import ModelFile
    from engine.stages.evaluate import prompt_for
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    path = builtin_path(DEFAULT_MODEL)
    ev = eval_data.general_set()
    gguf, hf = LlamaCppScorer(ModelFile("g", "gguf", path), 1), TransformersScorer(ModelFile("h", "gguf", path), 1)
    try:
        agree, gaps = 0, []
        for item in ev.items[:10]:
            prompt = prompt_for(item, [])
            a, b = gguf.label_logprobs(prompt, list(item.labels)), hf.label_logprobs(prompt, list(item.labels))
            agree += a.index(max(a)) == b.index(max(b))
            gaps += [abs(x - y) for x, y in zip(a, b)]
        # llama.cpp runs the Q4_1 weights, transformers their float32 dequantization: close, not equal
        assert agree >= 9 and sum(gaps) / len(gaps) < 0.3, (agree, gaps)
        question = prompt_for(EvalItem("x", "Name a colour.", "", ""), [])
        assert gguf.generate(question, 6) == hf.generate(question, 6)
    finally:
        gguf.close()
        hf.close()


@pytest.mark.slow
def test_llama_cpp_scores_many_prompts_in_one_pass_as_it_scores_each_alone() -> None:
    """Prompts scored together (shared prefix once, a sequence per label) score as each does alone.
    (Reading one-token labels off one sequence per prompt packs more prompts per pass, but then
    llama.cpp's batched decode drifted by up to 0.18 nats from a lone decode: not done.)"""
    from engine.backends.runtimes.llamacpp import LlamaCppScorer
    from engine.backends.types import ModelFile
    from engine.stages.evaluate import prompt_for
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    scorer = LlamaCppScorer(ModelFile("g", "gguf", builtin_path(DEFAULT_MODEL)), 1)
    try:
        items = eval_data.general_set().items[:8]
        prompts = [prompt_for(item, []) for item in items]
        labels = [[" yes", " no", " maybe"]] * 4 + [[" yes", " no", " not stated in the text"]] * 4
        together = scorer.label_logprobs_many(prompts, labels)
        alone = [scorer.label_logprobs(p, list(ls)) for p, ls in zip(prompts, labels)]
        gaps = [abs(a - b) for row_a, row_b in zip(together, alone) for a, b in zip(row_a, row_b)]
        assert max(gaps) < 1e-3, gaps
        assert all(row[2] < row[0] - 1.0 for row in together[4:])  # a five-token label is far less likely
        assert len({round(row[0], 2) for row in together}) > 1  # the prompts differ, so do the scores
    finally:
        scorer.close()


@pytest.mark.slow
@needs_pubmedqa
def test_eval_cli_table_json_and_kill_9_resume(db, tmp_path) -> None:
    talk_project(db)
    free = tmp_path / "free.jsonl"
    free.write_text(
        '{"instruction": "Define sepsis in one sentence.", "output": "A life-threatening response to infection."}\n'
        '{"instruction": "Name one drug for asthma.", "output": "Inhaled corticosteroids such as budesonide."}\n'
    )
    args = ["eval", "run", "--project", "talk", "--pubmedqa", str(PUBMEDQA), "--data", str(free), "--limit", "16"]
    args += ["--max-tokens", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "--format", "text", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    p = projects.get(db, "talk")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = evals.list_for(db, p)
        if found and len(evals.scores(db, found[0].id)) >= 8:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    [ev] = evals.list_for(db, p)
    partial = len(evals.scores(db, ev.id))
    assert 8 <= partial < 2 * (16 + 2 + 16 + 2 * 3) and ev.status == "running"
    out_json = tmp_path / "out" / "eval.json"
    r = run_engine(*args, "--json", str(out_json), timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"resuming evaluation {ev.id}" in r.stderr
    stored = evals.scores(db, ev.id)
    # default models: the base and the current expert; every item scored exactly once per model
    # plus the 3 content-free inputs of each classification set (pubmedqa, off-domain) per model
    cf = [s for s in stored if "content-free" in s.dataset]
    assert len(cf) == 2 * 2 * 3 and {s.item_key for s in cf} == {"cf-0", "cf-1", "cf-2"}
    assert len(stored) == 2 * (16 + 2 + 16) + len(cf) == len({(s.dataset, s.model, s.item_key) for s in stored})
    assert "pubmedqa" in r.stdout and "twin:q8_0 − base" in r.stdout and "general (off-domain)" in r.stdout
    assert "majority" in r.stdout and "rouge_l" in r.stdout and "macro_f1" in r.stdout
    results = json.loads(out_json.read_text())
    pub = next(d for d in results["datasets"] if d["dataset"] == "pubmedqa")
    assert pub["n"] == 16 and set(pub["models"]) == {"base", "twin:q8_0"} and "difference" in pub
    assert sum(pub["models"]["base"]["predicted"].values()) == 16
    done = evals.get(db, ev.id)
    assert done.status == "done" and done.fingerprints["data"]["pubmedqa"] and done.fingerprints["models"]["base"]
    assert done.fingerprints["adapters"]["twin"]["training_data"] == "f" * 12
    shown = run_engine("eval", "show", str(ev.id), "--project", "talk")
    assert shown.returncode == 0 and "pubmedqa" in shown.stdout
    listed = run_engine("eval", "list", "--project", "talk")
    assert "done" in listed.stdout and "base vs twin:q8_0" in listed.stdout
    # bad input: a clear message and exit 2, no traceback
    for bad, message in (
        (["--data", str(tmp_path / "nope.jsonl")], "no such file"),
        (["--model", "nope"], "no chat model 'nope'"),
        (["--model", "hf:twin"], "no merged model for 'twin'"),
        (["--shots", "3"], "needs approved training examples"),
    ):
        r = run_engine("eval", "run", "--project", "talk", "--limit", "2", "--no-seeds", *bad)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
