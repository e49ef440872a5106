"""Runtimes by name, and what plugins add: a new runtime is one module plus one `Runtime` here.

`auto` picks the runtime registered as the default for the model's file format (GGUF: llama.cpp,
Hugging Face folders: transformers). Plugins named in SELFSPEC_PLUGINS (comma-separated module
names, inherited by engine children) may register runtimes, named models and embedders; the
test suite registers its stand-in runtime and embedder this way, so product code never names them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.types import Generator, GeneratorOptions, ModelFile, Scorer
from engine.errors import UserError

AUTO = "auto"


@dataclass(frozen=True)
class Runtime:
    name: str
    module: str
    """imported on first use; defines open_generator(model, options) and open_scorer(model, threads)"""
    formats: tuple[str, ...]
    """model file formats it can run"""
    default_for: tuple[str, ...] = ()
    """formats for which `auto` picks it"""
    f16_copy: bool = False
    """it can run a quantized GGUF on an F16 copy of its weights (a generation's `weights` setting)"""


@dataclass(frozen=True)
class NamedModel:
    format: str
    path: Path
    architecture: str


_RUNTIMES: dict[str, Runtime] = {}
_MODELS: dict[str, NamedModel] = {}
_EMBEDDERS: dict[str, Callable[[str], Any]] = {}
_loaded_plugins: set[str] = set()


def register_runtime(runtime: Runtime) -> None:
    _RUNTIMES[runtime.name] = runtime


def register_model(name: str, model: NamedModel) -> None:
    _MODELS[name] = model


def register_embedder(prefix: str, factory: Callable[[str], Any]) -> None:
    """Embedder names starting with `prefix` are built by `factory(name)`."""
    _EMBEDDERS[prefix] = factory


register_runtime(
    Runtime("llama.cpp", "engine.backends.runtimes.llamacpp", ("gguf",), default_for=("gguf",), f16_copy=True)
)
register_runtime(Runtime("transformers", "engine.backends.runtimes.hf", ("hf", "gguf"), default_for=("hf",)))
register_runtime(Runtime("endpoint", "engine.backends.runtimes.endpoint", ("gguf", "hf")))
register_runtime(Runtime("vllm", "engine.backends.runtimes.vllm_runtime", ("hf",)))
register_runtime(
    Runtime(
        "mixture",
        "engine.backends.runtimes.mixture_runtime",
        ("mixture", "mixture-gguf"),
        default_for=("mixture", "mixture-gguf"),
    )
)


def load_plugins() -> None:
    for name in filter(None, (p.strip() for p in os.environ.get("SELFSPEC_PLUGINS", "").split(","))):
        if name not in _loaded_plugins:
            _loaded_plugins.add(name)
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise UserError(f"SELFSPEC_PLUGINS: cannot import {name!r}: {exc}") from exc


def names() -> list[str]:
    load_plugins()
    return [AUTO, *_RUNTIMES]


def named_model(name: str) -> NamedModel | None:
    load_plugins()
    return _MODELS.get(name)


def embedder_factory(name: str) -> Callable[[str], Any] | None:
    load_plugins()
    return next((f for prefix, f in _EMBEDDERS.items() if name.startswith(prefix)), None)


def runtime_for(fmt: str, backend: str = AUTO) -> Runtime:
    """The runtime to open a model of this format with; a clear error when none can."""
    load_plugins()
    if backend == AUTO:
        found = next((r for r in _RUNTIMES.values() if fmt in r.default_for), None)
        if found is None:
            raise UserError(f"no runtime runs {fmt!r} models")
        return found
    runtime = _RUNTIMES.get(backend)
    if runtime is None:
        raise UserError(f"--backend {backend}: unknown runtime (choose from {', '.join(names())})")
    if fmt not in runtime.formats:
        raise UserError(f"--backend {backend} cannot run {fmt!r} models (it runs: {', '.join(runtime.formats)})")
    return runtime


def _module(runtime: Runtime) -> Any:
    return importlib.import_module(runtime.module)


def open_generator(model: ModelFile, options: GeneratorOptions, backend: str = AUTO) -> Generator:
    return _module(runtime_for(model.format, backend)).open_generator(model, options)  # type: ignore[no-any-return]


def open_scorer(model: ModelFile, threads: int, backend: str = AUTO) -> Scorer:
    runtime = runtime_for(model.format, backend)
    module = _module(runtime)
    if not hasattr(module, "open_scorer"):
        raise UserError(f"the {runtime.name} runtime cannot score models")
    return module.open_scorer(model, threads)  # type: ignore[no-any-return]
