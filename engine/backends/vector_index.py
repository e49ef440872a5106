"""hnswlib cosine index over chunk vectors; labels are chunk ids. A cache of the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

M, EF_CONSTRUCTION, EF_SEARCH = 16, 200, 64


class VectorIndex:
    """Persisted as `<path>` plus `<path>.json` (model, dim); both replaced atomically."""

    def __init__(self, path: Path, model: str, dim: int, threads: int = 1) -> None:
        import hnswlib

        self.path, self.model, self.dim = path, model, dim
        self._index = hnswlib.Index(space="cosine", dim=dim)
        self._index.set_num_threads(max(1, threads))
        self._loaded = self._try_load()
        if not self._loaded:
            self._index.init_index(max_elements=1024, ef_construction=EF_CONSTRUCTION, M=M)
        self._index.set_ef(EF_SEARCH)

    @property
    def meta_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def _try_load(self) -> bool:
        """Load a matching index file; a missing, foreign or corrupt one means rebuild."""
        if not self.path.is_file() or not self.meta_path.is_file():
            return False
        try:
            meta = json.loads(self.meta_path.read_text())
            if meta.get("model") != self.model or meta.get("dim") != self.dim:
                return False
            self._index.load_index(str(self.path), max_elements=int(meta.get("capacity", 1024)))
        except (OSError, ValueError, RuntimeError):
            return False
        return True

    @property
    def loaded_from_disk(self) -> bool:
        return self._loaded

    def ids(self) -> set[int]:
        return set(int(i) for i in self._index.get_ids_list())

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        if not ids:
            return
        need = len(self) + len(ids)
        cap = self._index.get_max_elements()
        if need > cap:
            self._index.resize_index(max(need, cap * 2))
        self._index.add_items(vectors, np.asarray(ids, dtype=np.int64), replace_deleted=False)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        count = len(self)
        if count == 0:
            return []
        k = min(k, count)
        self._index.set_ef(max(EF_SEARCH, k * 2))
        labels, distances = self._index.knn_query(vector.reshape(1, -1), k=k)
        return [(int(lab), float(1.0 - d)) for lab, d in zip(labels[0], distances[0])]

    def save(self) -> None:
        """Write to temporary names, then rename over the old files."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        self._index.save_index(str(tmp))
        meta_tmp = self.meta_path.with_name(self.meta_path.name + ".partial")
        meta = {
            "model": self.model,
            "dim": self.dim,
            "count": len(self),
            "capacity": int(self._index.get_max_elements()),
        }
        meta_tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.path)
        os.replace(meta_tmp, self.meta_path)
