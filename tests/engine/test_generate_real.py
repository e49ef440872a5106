"""Both generation stages for real: the embedded GGUF on llama.cpp, and a transformers folder.

The transformers model is the embedded default dequantized into a local HF folder (real weights,
real tokenizer, no download). Each backend runs a generation straight and one stopped mid-way and
resumed, sharing one loaded model, and the stored results must be identical.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.stages.context import Context, Interrupted
from engine.stages.generate import GenerationRun, open_generation
from engine.stages.models import DEFAULT_MODEL, builtin_path
from engine.store import open_store, projects
from tests.helpers import ROOT, dump, run_engine

pytestmark = pytest.mark.slow
SMALL = {"seed": 5, "max_tokens": 160, "response_max_tokens": 48, "passages": 2, "demos": 2, "max_prompts": 12}
SMALL["calibration_seeds"] = 2  # the label bias on 2 seeds per label type: enough to exercise it, quick


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    out = tmp_path_factory.mktemp("hf") / "smollm2-hf"
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # loaded from GGUF: save plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _project(model: str) -> None:
    assert (
        run_engine(
            "project", "create", "r", "--domain", "biomedicine", "--base-model", model, "--embedder", "fake-hash"
        ).returncode
        == 0
    )
    assert run_engine("seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", "r").returncode == 0
    assert (
        run_engine("corpus", "import", str(ROOT / "seeds" / "corpus" / "biomedicine"), "--project", "r").returncode == 0
    )


def _straight_and_resumed(tmp_path: Path, monkeypatch, model_setup, options: dict, target: int = 3) -> dict:
    generator = None
    results = {}
    for label in ("straight", "resumed"):
        home = tmp_path / label
        home.mkdir()
        monkeypatch.setenv("SELFSPEC_HOME", str(home))
        model_name = model_setup()
        _project(model_name)
        db = open_store()
        ctx = Context(db=db, emit=lambda e: None, project=projects.get(db, "r"))
        gen = open_generation(ctx, dict(options), target, None, False)
        job = GenerationRun(ctx, gen)
        if generator is None:
            job.load_model()
            generator = job.generator
            generator.close = lambda: None  # shared by both runs
        if label == "resumed":
            calls = [0]
            real = generator.generate

            def stopping(prompts, sampling, seeds, cancel, watch=None, real=real, calls=calls, ctx=ctx):  # type: ignore[no-untyped-def]
                calls[0] += 1
                if calls[0] == 2:
                    ctx.stop_flag.set()
                return real(prompts, sampling, seeds, cancel, watch)

            job.generator = type("Stopping", (), {})()
            for attr in ("name", "context_length", "batch_size", "count_tokens", "close", "label_logprobs_many"):
                if hasattr(generator, attr):
                    setattr(job.generator, attr, getattr(generator, attr))
            job.generator.generate = stopping
            with pytest.raises(Interrupted):
                job.run()
            ctx = Context(db=db, emit=lambda e: None, project=projects.get(db, "r"))
            job = GenerationRun(ctx, open_generation(ctx, {}, None, None, False))
        job.generator = generator
        summary = job.run()
        assert summary["prompts"] >= 1
        db.close()
        results[label] = dump(home / "selfspec.db")
    return results


def test_llama_cpp_both_stages_and_resume(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SELFSPEC_THREADS", raising=False)
    results = _straight_and_resumed(tmp_path, monkeypatch, lambda: DEFAULT_MODEL, SMALL)
    assert results["straight"] == results["resumed"]
    prompts = results["straight"]["prompts"]
    assert prompts and all(isinstance(p[3], str) for p in prompts)
    assert any(p[3].strip() for p in prompts)  # the model wrote something
    assert results["straight"]["examples"], "no task was kept, so stage 2 did not run"
    for row in results["straight"]["examples"]:
        assert row[4].strip()  # a non-empty answer
        assert '"chunk_id"' in row[7]


def test_transformers_folder_batched_both_stages_and_resume(tmp_path: Path, monkeypatch, hf_folder: Path) -> None:
    def register() -> str:
        r = run_engine("models", "add", str(hf_folder), "--name", "smol-hf")
        assert r.returncode == 0, r.stderr
        return "smol-hf"

    options = {
        **SMALL,
        "batch_size": 2,
        "device": "cpu",
        "tasks_per_prompt": 1,
        "max_tokens": 100,
        "response_max_tokens": 32,
        "max_prompts": 8,
    }
    results = _straight_and_resumed(tmp_path, monkeypatch, register, options, target=2)
    assert results["straight"] == results["resumed"]
    assert any(p[3].strip() for p in results["straight"]["prompts"])
    assert results["straight"]["examples"], "no task was kept, so stage 2 did not run"


def test_cli_generate_on_the_embedded_default(home: Path) -> None:
    _project(DEFAULT_MODEL)
    env = {"SELFSPEC_THREADS": str(len(os.sched_getaffinity(0)))}
    r = run_engine(
        "generate",
        "--project",
        "r",
        "--target",
        "2",
        "--seed",
        "1",
        "--max-tokens",
        "160",
        "--response-max-tokens",
        "48",
        "--max-prompts",
        "10",
        "--calibration-seeds",
        "2",
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tok/s" in r.stderr and "loading smollm2-135m-instruct (gguf" in r.stderr
    assert "prompts:" in r.stdout


def _backends(hf_folder: Path):  # type: ignore[no-untyped-def]
    from engine.backends.runtimes.hf import TransformersGenerator
    from engine.backends.runtimes.llamacpp import LlamaCppGenerator
    from engine.backends.types import GeneratorOptions, ModelFile

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    yield LlamaCppGenerator(ModelFile(DEFAULT_MODEL, "gguf", gguf), GeneratorOptions(2, 2048))
    yield TransformersGenerator(ModelFile("smol-hf", "hf", hf_folder), GeneratorOptions(2, 2048, "cpu", 2))


def test_both_backends_honour_sampling_limits_and_stops(hf_folder: Path) -> None:
    from engine.backends.types import Sampling

    prompts = ["List three symptoms of asthma:\n1.", "The kidney filters"]
    never = lambda: False  # noqa: E731
    for gen in _backends(hf_folder):
        short = gen.generate(prompts, Sampling(0.0, 1.0, 5), [1, 2], never)
        assert [c.finish for c in short] == ["length", "length"] and all(c.tokens == 5 for c in short)
        again = gen.generate(prompts, Sampling(0.0, 1.0, 5), [9, 9], never)
        assert [c.text for c in again] == [c.text for c in short]  # greedy ignores the seed
        stopped = gen.generate(prompts, Sampling(0.0, 1.0, 40, ("\n",)), [1, 2], never)
        assert all("\n" not in c.text for c in stopped) and all(c.tokens <= 40 for c in stopped)
        a = gen.generate(prompts, Sampling(1.0, 0.98, 12), [3, 3], never)
        b = gen.generate(prompts, Sampling(1.0, 0.98, 12), [3, 3], never)
        assert [c.text for c in a] == [c.text for c in b]  # same seed, same sample
        assert gen.count_tokens("The kidney filters") >= 3
        assert gen.generate(prompts, Sampling(0.0, 1.0, 50), [1, 2], lambda: True) == []
        calls = [0]

        def soon(calls: list[int] = calls) -> bool:  # false for the first checks, then a stop mid-way
            calls[0] += 1
            return calls[0] > 4

        mid = gen.generate(prompts, Sampling(0.0, 1.0, 50), [1, 2], soon)
        assert mid and mid[0].finish == "cancelled" and mid[0].tokens < 50
        gen.close()


def test_a_llama_cpp_sequence_samples_the_same_alone_or_in_any_batch() -> None:
    """What resume and Ray workers rely on: a sequence's text depends on its prompt and seed, not on
    which prompts share its call (continuous batching, a shared prefix of any length or none).
    Long prompts matter: with flash attention on, half of these came out different."""
    from engine.backends.runtimes.llamacpp import LlamaCppGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    gen = LlamaCppGenerator(ModelFile(DEFAULT_MODEL, "gguf", gguf), GeneratorOptions(2, 2048, batch_size=4))
    corpus = ROOT / "seeds" / "corpus" / "biomedicine"
    docs = [(corpus / f"{n}.md").read_text() for n in ("nephrology", "oncology", "neurology", "cardiovascular")]
    head = "You are asked to come up with new tasks. " + docs[3][:1200] + "\nTasks:\n"
    prompts = [head + f"Task {i}: " + docs[i % 3][i * 200 : i * 200 + 600 + 97 * i] for i in range(8)]
    sampling = Sampling(1.0, 1.0, 80)
    never = lambda: False  # noqa: E731
    whole = [c.text for c in gen.generate(prompts, sampling, list(range(8)), never)]
    halves = [c.text for c in gen.generate(prompts[:4], sampling, [0, 1, 2, 3], never)]
    halves += [c.text for c in gen.generate(prompts[4:], sampling, [4, 5, 6, 7], never)]
    alone = [gen.generate([p], sampling, [i], never)[0].text for i, p in enumerate(prompts)]
    gen.close()
    assert sum(len(t) > 20 for t in whole) >= 6
    assert whole == halves == alone


@pytest.mark.gpu
def test_transformers_on_cuda_is_bf16_and_batched(hf_folder: Path) -> None:
    import time

    from engine.backends.runtimes.hf import TransformersGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    gen = TransformersGenerator(ModelFile("smol-hf", "hf", hf_folder), GeneratorOptions(4, 2048, "cuda", 32))
    assert str(next(gen.model.parameters()).dtype) == "torch.bfloat16"
    prompts = [f"Question {i}: what does the liver do?\nAnswer:" for i in range(32)]
    rates = {}
    for size in (1, 32):
        gen.batch_size = size
        t0 = time.perf_counter()
        outs = gen.generate(prompts, Sampling(0.0, 1.0, 64), [0] * 32, lambda: False)
        rates[size] = sum(o.tokens for o in outs) / (time.perf_counter() - t0)
    assert rates[32] > 4 * rates[1], rates
