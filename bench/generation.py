"""Generation benchmark: tokens/s of our loop against the backend called raw, on the same prompts.

Our loop (prompt building, parsing, filtering, retrieval, SQLite commits, events) runs a real
generation with the embedded default; every generate() call it makes is recorded and then replayed
straight into the backend (llama-cpp-python's create_completion; transformers' model.generate),
so both sides produce the same tokens. The ratio ours/raw is the share of the backend's speed our
loop keeps (goal: overhead under 10%). With --hf, the same on a transformers folder made from the
embedded default, plus batched against batch-1 generation on the same prompts (on a GPU the goal
is 15x; the CPU figure is reported as measured).

    .venv/bin/python bench/generation.py [--target 4] [--max-prompts 6] [--hf]
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


class Recorder:
    """Wraps a generator; keeps every call and its completions."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.calls = inner, []
        self.name, self.context_length, self.batch_size = inner.name, inner.context_length, inner.batch_size
        self.count_tokens, self.close = inner.count_tokens, lambda: None

    def generate(self, prompts, sampling, seeds, cancel):  # type: ignore[no-untyped-def]
        out = self.inner.generate(prompts, sampling, seeds, cancel)
        self.calls.append((list(prompts), sampling, list(seeds), out))
        return out


def project(home: Path, model: str) -> None:
    os.environ["SELFSPEC_HOME"] = str(home)
    from engine.stages.context import Context
    from engine.stages.corpus import import_corpus
    from engine.stages.seeds_io import read_seed_file
    from engine.store import open_store, projects, seeds

    db = open_store()
    p = projects.create(db, "bench", "biomedicine", model)
    seeds.import_drafts(db, p, "bio", read_seed_file(ROOT / "seeds" / "biomedicine.jsonl"), "bench")
    import_corpus(Context(db=db, emit=lambda e: None, project=p), [ROOT / "seeds" / "corpus" / "biomedicine"])


def ours(generator, options: dict, target: int) -> tuple[Recorder, dict[str, float]]:  # type: ignore[no-untyped-def]
    from engine.stages.context import Context
    from engine.stages.generate import GenerationRun, open_generation
    from engine.store import open_store, projects

    db = open_store()
    ctx = Context(db=db, emit=lambda e: None, project=projects.get(db, "bench"))
    job = GenerationRun(ctx, open_generation(ctx, options, target, None, True))
    rec = Recorder(generator)
    job.generator = rec
    times = {}
    t0 = time.perf_counter()
    job.brainstorm()
    times["brainstorm"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    job.searcher = job._searcher()  # one-time load of the embedder and index, reported apart
    times["retrieval_load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    job.respond()
    times["respond"] = time.perf_counter() - t0
    return rec, times


def stage_of(call) -> str:  # type: ignore[no-untyped-def]
    return "brainstorm" if "List of tasks:" in call[0][0] else "respond"


def replay_llama(llm, calls) -> tuple[dict[str, float], bool]:  # type: ignore[no-untyped-def]
    from engine.backends.runtimes.llamacpp import completion_args

    times = {"brainstorm": 0.0, "respond": 0.0}
    same = True
    for prompts, s, seeds, outs in calls:
        for prompt, seed, out in zip(prompts, seeds, outs):
            llm.reset()
            t0 = time.perf_counter()
            r = llm.create_completion(prompt, **completion_args(s, seed))
            times[stage_of((prompts,))] += time.perf_counter() - t0
            same &= r["choices"][0]["text"] == out.text
    return times, same


def report(label: str, calls, ours_t: dict, raw_t: dict) -> None:  # type: ignore[no-untyped-def]
    for stage in ("brainstorm", "respond"):
        tokens = sum(o.tokens for c in calls if stage_of(c) == stage for o in c[3])
        if not tokens or not raw_t[stage]:
            continue
        o_rate, r_rate = tokens / ours_t[stage], tokens / raw_t[stage]
        print(
            f"{label:<14} {stage:<10} {tokens:>7} {r_rate:>12.1f} {o_rate:>12.1f} {o_rate / r_rate:>8.3f}"
            f" {100 * (1 - o_rate / r_rate):>9.1f}%"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, default=4)
    ap.add_argument("--max-prompts", type=int, default=6)
    ap.add_argument("--hf", action="store_true", help="also the transformers backend (slow on CPU)")
    args = ap.parse_args()
    for key in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from engine.backends.runtimes.llamacpp import LlamaCppGenerator
    from engine.backends.types import GeneratorOptions, ModelFile
    from engine.cpu import free_cores
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None, "the embedded default model is not installed"
    threads = free_cores()
    options = {"seed": 7, "max_prompts": args.max_prompts, "max_tokens": 256, "response_max_tokens": 128}
    print(f"embedded default {gguf.name}, {threads} threads, target {args.target}, max {args.max_prompts} prompts")
    print(
        f"{'backend':<14} {'stage':<10} {'tokens':>7} {'raw tok/s':>12} {'ours tok/s':>12}"
        f" {'ratio':>8} {'overhead':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        project(Path(tmp), DEFAULT_MODEL)
        gen = LlamaCppGenerator(ModelFile(DEFAULT_MODEL, "gguf", gguf), GeneratorOptions(threads, 4096))
        rec, ours_t = ours(gen, options, args.target)
        raw_t, same = replay_llama(gen.llm, rec.calls)
        report("llama.cpp", rec.calls, ours_t, raw_t)
        print(f"one-time load of the retrieval embedder and index (not in the ratios): {ours_t['retrieval_load']:.2f}s")
        print(f"replayed outputs identical to the loop's: {same}")
        gen.close()
        if args.hf:
            hf_bench(Path(tmp), gguf, threads, options, args.target)


def hf_bench(tmp: Path, gguf: Path, threads: int, options: dict, target: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.backends.runtimes.hf import TransformersGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    folder = tmp / "hf"
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    gen = TransformersGenerator(ModelFile("smol-hf", "hf", folder), GeneratorOptions(threads, 4096, "auto", 8))
    rec, ours_t = ours(gen, {**options, "batch_size": 8}, target)
    raw_t = {"brainstorm": 0.0, "respond": 0.0}
    for prompts, s, seeds, _ in rec.calls:
        enc = gen.tok(prompts, return_tensors="pt", padding=True).to(gen.device)
        torch.manual_seed(seeds[0])
        kw = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0} if s.temperature else {}
        t0 = time.perf_counter()
        with torch.inference_mode():
            gen.model.generate(
                **enc,
                max_new_tokens=s.max_tokens,
                pad_token_id=gen.tok.pad_token_id,
                stop_strings=list(s.stop),
                tokenizer=gen.tok,
                **kw,
            )
        raw_t[stage_of((prompts,))] += time.perf_counter() - t0
    report("transformers", rec.calls, ours_t, raw_t)
    # batched against batch-1 on the same 8 answer prompts, greedy, fixed length
    prompts = [p for c in rec.calls if stage_of(c) == "respond" for p in c[0]][:8] or [c[0][0] for c in rec.calls][:8]
    prompts = (prompts * 8)[:8]
    greedy = Sampling(0.0, 1.0, 64)
    rates = {}
    for size in (1, 8):
        gen.batch_size = size
        t0 = time.perf_counter()
        outs = gen.generate(prompts, greedy, [0] * len(prompts), lambda: False)
        rates[size] = sum(o.tokens for o in outs) / (time.perf_counter() - t0)
    print(
        f"transformers on {gen.device}: batch 8 {rates[8]:.1f} tok/s vs batch 1 {rates[1]:.1f} tok/s "
        f"= {rates[8] / rates[1]:.2f}x (goal on a GPU: 15x)"
    )


if __name__ == "__main__":
    main()
