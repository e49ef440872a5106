"""A deterministic hashing embedder for fast tests (enabled only by SELFSPEC_TEST_FAKES=1)."""

from __future__ import annotations

import hashlib
import os
import re
import time

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """Bag of hashed lowercase words: texts sharing words get similar vectors."""

    name = "fake-hash"
    dim = 64

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in _WORD.finditer(text)]

    def embed(self, texts: list[str]) -> np.ndarray:
        delay = float(os.environ.get("SELFSPEC_FAKE_EMBED_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)  # lets tests interrupt a run mid-way
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else 1.0 / np.sqrt(self.dim)
        return out
