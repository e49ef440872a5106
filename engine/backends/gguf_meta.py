"""Reads a GGUF file's header and key/value metadata without loading any tensors."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import UserError

MAGIC = b"GGUF"
# value type id -> struct format (scalars); 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_KEEP_ARRAYS = 16  # arrays longer than this (token lists) are skipped, only their length kept
MAX_KV = 100_000


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path) -> None:
        self.fh, self.path = fh, path

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise UserError(f"{self.path}: truncated GGUF file (header ends early)")
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > 1 << 28:
            raise UserError(f"{self.path}: corrupt GGUF metadata (string of {n} bytes)")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type, count = self.scalar("<I"), self.scalar("<Q")
            if count > 1 << 32:
                raise UserError(f"{self.path}: corrupt GGUF metadata (array of {count} items)")
            if item_type in _SCALARS and count > _KEEP_ARRAYS:
                self.fh.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
                return {"array_len": count}
            items = [self.value(item_type) for _ in range(count)]
            return items if count <= _KEEP_ARRAYS else {"array_len": count}
        raise UserError(f"{self.path}: corrupt GGUF metadata (unknown value type {vtype})")


def read_gguf_metadata(path: Path, count_weights: bool = False) -> dict[str, Any]:
    """Return {'version', 'tensor_count', 'metadata': {...}}; UserError explains any problem.
    With count_weights, also 'weights': the number of elements in all tensors (from the tensor infos)."""
    try:
        with path.open("rb") as fh:
            reader = _Reader(fh, path)
            head = fh.read(4)
            if head != MAGIC:
                raise UserError(f"{path}: not a GGUF file (starts with {head[:4]!r}, expected b'GGUF')")
            version = reader.scalar("<I")
            if version not in (2, 3):
                raise UserError(f"{path}: unsupported GGUF version {version} (expected 2 or 3)")
            tensors, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
            if kv_count > MAX_KV:
                raise UserError(f"{path}: corrupt GGUF header ({kv_count} metadata entries)")
            meta = {}
            for _ in range(kv_count):
                key = reader.string()
                meta[key] = reader.value(reader.scalar("<I"))
            found: dict[str, Any] = {"version": version, "tensor_count": tensors, "metadata": meta}
            if count_weights:
                found["weights"] = _count_weights(reader, tensors)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return found


def _count_weights(reader: _Reader, tensors: int) -> int:
    """Elements over the tensor infos that follow the metadata (name, dims, type, offset each)."""
    if tensors > MAX_KV:
        raise UserError(f"{reader.path}: corrupt GGUF header ({tensors} tensors)")
    total = 0
    for _ in range(tensors):
        reader.string()
        n_dims = reader.scalar("<I")
        if n_dims > 8:
            raise UserError(f"{reader.path}: corrupt GGUF tensor info ({n_dims} dimensions)")
        size = 1
        for _ in range(n_dims):
            size *= reader.scalar("<Q")
        reader.scalar("<I")
        reader.scalar("<Q")
        total += size
    return total
