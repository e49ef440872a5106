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
from tests.conftest import ROOT, run_engine
from tests.test_generate import dump

pytestmark = pytest.mark.slow
SMALL = {"seed": 5, "max_tokens": 160, "response_max_tokens": 48, "passages": 2, "demos": 2, "max_prompts": 12}


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


def _straight_and_resumed(tmp_path: Path, monkeypatch, model_setup, options: dict) -> dict[str, dict]:
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
        gen = open_generation(ctx, dict(options), 3, None, False)
        job = GenerationRun(ctx, gen)
        if generator is None:
            job.load_model()
            generator = job.generator
            generator.close = lambda: None  # shared by both runs
        if label == "resumed":
            calls = [0]
            real = generator.generate

            def stopping(prompts, sampling, seeds, cancel, real=real, calls=calls, ctx=ctx):  # type: ignore[no-untyped-def]
                calls[0] += 1
                if calls[0] == 2:
                    ctx.stop_flag.set()
                return real(prompts, sampling, seeds, cancel)

            job.generator = type("Stopping", (), {})()
            for attr in ("name", "context_length", "batch_size", "count_tokens", "close"):
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
    for row in results["straight"]["examples"]:
        assert row[4].strip()  # a non-empty answer
        assert '"chunk_id"' in row[7]


def test_transformers_folder_batched_both_stages_and_resume(tmp_path: Path, monkeypatch, hf_folder: Path) -> None:
    def register() -> str:
        r = run_engine("models", "add", str(hf_folder), "--name", "smol-hf")
        assert r.returncode == 0, r.stderr
        return "smol-hf"

    options = {**SMALL, "batch_size": 2, "device": "cpu"}
    results = _straight_and_resumed(tmp_path, monkeypatch, register, options)
    assert results["straight"] == results["resumed"]
    assert any(p[3].strip() for p in results["straight"]["prompts"])


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
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tok/s" in r.stderr and "loading smollm2-135m-instruct (gguf" in r.stderr
    assert "prompts:" in r.stdout
