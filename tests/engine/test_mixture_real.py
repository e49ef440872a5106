"""A two-expert mixture on the embedded default (SmolLM2-135M), end to end through the CLI: two projects
(biomedicine, finance) each train an expert, the mixture's router trains, exports to GGUF (the base
plus one LoRA GGUF per expert), answers routed per token (transformers) and per prompt (llama.cpp,
switching adapters on one loaded base), and evaluates against the base and each expert alone on both
domains and off-domain (per prompt both in transformers and on llama.cpp)."""

from __future__ import annotations

import json

import pytest

from engine import paths
from tests.helpers import run_engine

pytestmark = pytest.mark.slow


def _ok(*args: str, timeout: int = 900) -> str:
    r = run_engine(*args, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stderr[-2000:]}"
    return r.stdout


def test_two_expert_mixture_trains_exports_chats_and_evaluates(home, tmp_path) -> None:
    for name, domain in (("bio", "biomedicine"), ("fin", "finance")):
        _ok("project", "create", name, "--domain", domain)
        seed_file = paths.shipped_dir() / f"{domain}.jsonl"
        _ok("seeds", "import", str(seed_file), "--project", name)
        _ok("seeds", "hold-out", "--project", name, "--fraction", "0.2")
        rows = [json.loads(line) for line in seed_file.read_text().splitlines() if line.strip()][:24]
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in rows))
        _ok("dataset", "import", str(data), "--project", name, "--as", "accepted")
        _ok("train", "--project", name, "--name", "e1", "--max-steps", "3", "--batch-size", "4", "--micro-batch", "4")
    _ok("mixture", "create", "duo", "--expert", "bio/e1", "--expert", "fin/e1")
    trained = _ok("mixture", "train", "duo", "--max-steps", "4", "--batch-size", "4", "--micro-batch", "4")
    assert "routing bio: bio/e1" in trained and "routing fin: bio/e1" in trained
    exported = _ok("mixture", "export", "duo")
    assert "expert bio/e1" in exported and "expert fin/e1" in exported
    token = _ok("mixture", "chat", "duo", "-q", "Is aspirin an NSAID?", "--max-tokens", "12")
    assert "preferred_expert:" in token and "answer:" in token
    gguf = _ok("mixture", "chat", "duo", "-q", "Is aspirin an NSAID?", "--max-tokens", "12", "--gguf")
    assert "answered_by:" in gguf and ("bio/e1" in gguf or "fin/e1" in gguf)
    r = run_engine("chat", "--project", "bio", "--model", "mix:duo", "-q", "Is aspirin an NSAID?", timeout=600)
    assert r.returncode == 0 and "mix:duo→" in r.stderr, r.stderr[-2000:]  # the expert that answered, named
    table = _ok("mixture", "eval", "duo", "--limit", "3", "--max-tokens", "8", timeout=1800)
    print(table)  # the figures for the notes (pytest -s)
    for domain in ("bio", "fin"):
        models = ("base", "bio/e1 alone", "fin/e1 alone", "mixture (token)", "mixture (prompt)", "(prompt, GGUF)")
        for model in models:
            assert any(line.startswith(domain) and model in line for line in table.splitlines()), (domain, model)
    listed = _ok("mixture", "list")
    assert "duo" in listed and "done" in listed
