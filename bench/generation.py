"""Generation benchmark: today's path against the batched one, end to end, on the embedded default.

Both runs are real generations (prompt building, llama.cpp, parsing, filters, retrieval, SQLite
commits) with the same model, seeds and sampling, each in its own project:

- today: the pre-batching runtime (bench/legacy_llamacpp.py, one prompt at a time through
  create_completion, the cache reset per prompt) on the model file as it is, per-task answer
  demonstrations, the fixed brainstorm token limit, passages as retrieved and answers run to their
  limit (`--demo-block 1 --no-size-from-seeds --batch-size 1 --weights file --no-merge-passages
  --no-stop-doomed`): the product before this work;
- new: the product's defaults (batched multi-sequence decoding, shared-prefix reuse, one answer
  demonstration set per block, the brainstorm limit sized from the seeds and runaway tasks cut,
  the F16 copy, passages without repeats, answers ended once they would be dropped).

Printed: kept tasks/min, answered examples/min, tokens per kept task, prompt tokens evaluated and
saved by prefix reuse, seconds per answer written (kept or dropped by the answer filters), then
llama.cpp's raw rates on the new path's weights (prompt evaluation; decoding one sequence and N in
one context), and what the new path's own tokens cost at those rates: the most the hardware allows
for that work, with nothing else running and no sequence decoding alone.
The last line is `speedup examples/min: X.XXx` (goal on 2 cores: at least 4x).

    .venv/bin/python bench/generation.py [--target 16] [--batch 8] [--hf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Counting:
    """Wraps a generator; adds up prompt and completion tokens per stage."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.name, self.context_length, self.batch_size = inner.name, inner.context_length, inner.batch_size
        self.count_tokens = inner.count_tokens
        self.prompt_tokens = 0
        self.tokens = 0
        self.completions = 0

    @property
    def prefix_tokens_saved(self) -> int:
        return int(getattr(self.inner, "prefix_tokens_saved", 0))

    def generate(self, prompts, sampling, seeds, cancel, watch=None):  # type: ignore[no-untyped-def]
        out = self.inner.generate(prompts, sampling, seeds, cancel, watch)
        self.prompt_tokens += sum(o.prompt_tokens for o in out)
        self.tokens += sum(o.tokens for o in out)
        self.completions += len(out)
        return out

    def close(self) -> None:
        self.inner.close()


def make_project(name: str, model: str) -> None:
    from engine.stages.context import Context
    from engine.stages.corpus import import_corpus
    from engine.stages.seeds_io import read_seed_file
    from engine.store import open_store, projects, seeds

    db = open_store()
    p = projects.create(db, name, "biomedicine", model)
    seeds.import_drafts(db, p, "bio", read_seed_file(ROOT / "seeds" / "biomedicine.jsonl"), "bench")
    import_corpus(Context(db=db, emit=lambda e: None, project=p), [ROOT / "seeds" / "corpus" / "biomedicine"])


def run(name: str, model: str, options: dict, target: int) -> dict[str, float]:
    from engine.stages.context import Context
    from engine.stages.generate import GenerationRun, open_generation
    from engine.store import generation, open_store, projects

    make_project(name, model)
    db = open_store()
    ctx = Context(db=db, emit=lambda e: None, project=projects.get(db, name))
    job = GenerationRun(ctx, open_generation(ctx, options, target, None, True))
    job.load_model()
    job.generator = counter = Counting(job.generator)
    job.searcher = job._searcher()  # the embedder and index load once; not timed
    # one brainstorm and one respond pass, each timed: unlike `generate` (GenerationRun.run), no
    # top-up round follows when the answer filters drop answers, so a run may end short of target
    t0 = time.perf_counter()
    job.brainstorm()
    brainstorm_s = time.perf_counter() - t0
    brainstorm_tokens = counter.tokens
    generation.set_phase(db, job.gen.id, "respond")
    asked = counter.completions
    t0 = time.perf_counter()
    job.respond()
    respond_s = time.perf_counter() - t0
    counter.close()
    summary = job.summary()
    return {
        "kept": summary["kept_tasks"],
        "examples": summary["examples"],
        "prompts": summary["prompts"],
        "brainstorm_s": brainstorm_s,
        "respond_s": respond_s,
        "answers": counter.completions - asked,
        "tokens_per_kept": brainstorm_tokens / max(summary["kept_tasks"], 1),
        "prompt_tokens": counter.prompt_tokens,
        "saved": counter.prefix_tokens_saved,
        "tokens": counter.tokens,
    }


def raw_rates(gguf: Path, threads: int, n: int) -> dict[str, float]:
    """llama.cpp's own limits on `gguf` at the answers' lengths (~700-token prompts): prompt tokens/s
    evaluating n prompts that share nothing, and tokens/s decoding one sequence and n in one context
    (a 128-token completion less a 1-token one on the same prompts, whose prefix is then reused)."""
    from engine.backends.runtimes.llama_batch import BatchContext
    from engine.backends.types import Sampling

    engine = BatchContext(gguf, threads, 1024, n + 1)
    body = " The kidney filters the blood and keeps the balance of salt and water in the body." * 40
    rates: dict[str, float] = {}

    def timed(prompts: list[list[int]], tokens: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        outs = engine.generate(prompts, Sampling(1.0, 1.0, tokens), list(range(len(prompts))), lambda: False)
        return time.perf_counter() - t0, sum(o.tokens for o in outs)

    for size in (1, n):
        prompts = [engine.tokenize(f"Note {i}.{body} Question: what does the liver do?") for i in range(size)]
        cold, _ = timed(prompts, 1)  # n prompts share nothing past their first tokens: all evaluated
        if size == n:
            rates["prefill"] = sum(len(p) for p in prompts) / cold
        one, _ = timed(prompts, 1)
        full, made = timed(prompts, 128)
        rates[f"decode {size}"] = (made - size) / max(full - one, 1e-6)
    engine.close()
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, default=16, help="examples per run")
    ap.add_argument("--batch", type=int, default=8, help="the new path's batch size")
    ap.add_argument("--hf", action="store_true", help="also transformers batched against batch 1 (slow on CPU)")
    args = ap.parse_args()
    for key in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        os.environ.setdefault(key, "1")
    os.environ["SELFSPEC_PLUGINS"] = ",".join(
        filter(None, [os.environ.get("SELFSPEC_PLUGINS", ""), "bench.legacy_llamacpp"])
    )
    from engine.backends.f16_copy import auto_choice, f16_copy
    from engine.cpu import free_cores
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None, "the embedded default model is not installed"
    threads = free_cores()
    print(f"embedded default {gguf.name}, {threads} threads, target {args.target}, load {os.getloadavg()[0]:.2f}")
    common = {"seed": 7, "max_prompts": 20 * args.target}
    today = {
        **common,
        "backend": "llama.cpp-serial",
        "batch_size": 1,
        "demo_block": 1,
        "size_from_seeds": False,
        "weights": "file",
        "merge_passages": False,  # passages as retrieved, answers run to their limit: as before this work
        "stop_doomed": False,
    }
    new = {**common, "batch_size": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SELFSPEC_HOME"] = tmp
        results = {"today": run("today", DEFAULT_MODEL, today, args.target)}
        results["new"] = run("new", DEFAULT_MODEL, new, args.target)
        weights = f16_copy(gguf, threads, print) if auto_choice(gguf) == "f16" else gguf  # the new path's
        raw = raw_rates(weights, threads, args.batch)
    print(
        f"{'path':<6} {'prompts':>7} {'kept':>5} {'examples':>8} {'kept/min':>9} {'examples/min':>12}"
        f" {'tok/kept':>9} {'prompt tok':>10} {'saved':>7} {'brainstorm s':>12} {'answer s':>9} {'s/answer':>8}"
    )
    for name, r in results.items():
        total = r["brainstorm_s"] + r["respond_s"]
        print(
            f"{name:<6} {r['prompts']:>7.0f} {r['kept']:>5.0f} {r['examples']:>8.0f}"
            f" {60 * r['kept'] / r['brainstorm_s']:>9.2f} {60 * r['examples'] / total:>12.2f}"
            f" {r['tokens_per_kept']:>9.1f} {r['prompt_tokens']:>10.0f} {r['saved']:>7.0f}"
            f" {r['brainstorm_s']:>12.1f} {r['respond_s']:>9.1f} {r['respond_s'] / max(r['answers'], 1):>8.2f}"
        )
    print(
        f"raw llama.cpp on {weights.name}: prompts {raw['prefill']:.0f} tok/s; decoding one sequence"
        f" {raw['decode 1']:.1f} tok/s, {args.batch} sequences {raw[f'decode {args.batch}']:.1f} tok/s"
    )
    if args.hf:
        hf_batched(gguf, threads)
    kept_rate = {k: r["kept"] / r["brainstorm_s"] for k, r in results.items()}
    per_min = {k: 60 * r["examples"] / (r["brainstorm_s"] + r["respond_s"]) for k, r in results.items()}
    per_answer = {k: r["respond_s"] / max(r["answers"], 1) for k, r in results.items()}
    # the new path at raw rates: its own prompt and completion tokens at llama.cpp's raw rates, with no
    # time for parsing, filters, retrieval, SQLite or sequences that decode alone at a call's end (brainstorm
    # completions decode over shorter contexts than the answers' ~700 tokens, a little faster than this)
    r = results["new"]
    floor_s = (r["prompt_tokens"] - r["saved"]) / raw["prefill"] + r["tokens"] / raw[f"decode {args.batch}"]
    print(
        f"the new path's tokens at raw rates: {floor_s:.0f} s for its {r['examples']:.0f} examples"
        f" (measured {r['brainstorm_s'] + r['respond_s']:.0f} s) = {60 * r['examples'] / floor_s:.2f} examples/min,"
        f" {60 * r['examples'] / floor_s / per_min['today']:.2f}x today's"
    )
    print(f"speedup kept tasks/min: {kept_rate['new'] / kept_rate['today']:.2f}x")
    print(f"speedup seconds per answer written (kept or dropped): {per_answer['today'] / per_answer['new']:.2f}x")
    print(f"speedup examples/min: {per_min['new'] / per_min['today']:.2f}x")


def hf_batched(gguf: Path, threads: int) -> None:
    """transformers batch 8 against batch 1 on the same prompts (on a GPU the goal is vLLM at 15x)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.backends.runtimes.hf import TransformersGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hf"
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model.hf_quantizer = None
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        del model
        gen = TransformersGenerator(ModelFile("smol-hf", "hf", folder), GeneratorOptions(threads, 4096, "auto", 8))
        prompts = [f"Question {i}: what does the liver do? Answer:" for i in range(8)]
        rates = {}
        for size in (1, 8):
            gen.batch_size = size
            t0 = time.perf_counter()
            outs = gen.generate(prompts, Sampling(0.0, 1.0, 64), [0] * 8, lambda: False)
            rates[size] = sum(o.tokens for o in outs) / (time.perf_counter() - t0)
        print(
            f"transformers on {gen.device}: batch 8 {rates[8]:.1f} tok/s vs batch 1 {rates[1]:.1f} tok/s"
            f" = {rates[8] / rates[1]:.2f}x"
        )
        gen.close()


if __name__ == "__main__":
    main()
