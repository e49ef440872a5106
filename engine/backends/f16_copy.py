"""An F16 copy of a quantized GGUF model, for generating on CPU at llama.cpp's faster matrix paths.

llama.cpp's CPU kernels multiply F16, F32 and BF16 weights (and the types it repacks) as tiled
matrix products, but some quantized types, Q4_1 among them, only as row-by-row dot products. A
generation is bound by prompt evaluation (every answer carries its passages), so on such a file it
runs at about half the speed the cores allow: the embedded SmolLM2 Q4_1 evaluates long prompts at
about 200 tokens/s on 2 cores, its F16 copy at about 400 (ARCHITECTURE.md has the table).

The copy holds the file's own values, dequantized (the values transformers loads and trains on) and
rounded to F16: a relative error of at most 2^-11 per weight, far under the 4-bit rounding they
came from. It is made once per model file by llama.cpp's quantizer and kept in the home's cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from engine import paths
from engine.errors import UserError

AS_IS = {0: "F32", 1: "F16", 32: "BF16"}
"""general.file_type values whose weights are already in a fast layout"""
AUTO_LIMIT = 1 << 30
"""auto makes a copy only for models whose F16 copy is at most this many bytes: larger ones decode
bound by memory bandwidth, where 2 bytes per weight cost more than the faster prompt saves"""


def auto_choice(path: Path) -> str:
    """'f16' for a quantized GGUF whose F16 copy is small, else 'file'."""
    from engine.backends.gguf_meta import read_gguf_metadata

    found = read_gguf_metadata(path, count_weights=True)
    file_type = found["metadata"].get("general.file_type")
    if file_type in AS_IS or not isinstance(file_type, int):
        return "file"
    return "f16" if 2 * int(found["weights"]) <= AUTO_LIMIT else "file"


def cache_path(path: Path) -> Path:
    """Where the copy of `path` lives: named by the file's place, size and modification time."""
    resolved = path.resolve()
    st = resolved.stat()
    key = hashlib.sha256(f"{resolved}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return paths.home() / "cache" / "f16" / f"{resolved.stem}-{key}.F16.gguf"


def f16_copy(path: Path, threads: int, log: Callable[[str], None]) -> Path:
    """The F16 copy of `path`, made now if it is not cached yet (a partial copy is never used)."""
    import llama_cpp

    from engine.backends.gguf_meta import read_gguf_metadata
    from engine.backends.runtimes.llamacpp import c_stderr_to_log

    try:
        out = cache_path(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    found = read_gguf_metadata(path, count_weights=True)
    if out.is_file() and _whole(out, int(found["weights"])):
        return out
    need = 2 * int(found["weights"]) + (64 << 20)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(out.parent).free
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot make the F16 copy's folder: {exc.strerror or exc}") from exc
    if free < need:
        raise UserError(
            f"{out.parent}: {free >> 20} MiB free, the F16 copy of {path.name} needs {need >> 20} MiB"
            " (free some space, or generate with --weights file)"
        )
    log(f"making an F16 copy of {path.name} for faster prompt evaluation (once; kept in {out.parent})")
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
    params.nthread = max(1, threads)
    params.allow_requantize = True  # from a quantized type: dequantize, then store as F16
    try:
        with c_stderr_to_log():
            rc = llama_cpp.llama_model_quantize(str(path).encode(), str(partial).encode(), ctypes.byref(params))
        if rc != 0 or not partial.is_file():
            raise UserError(f"{path}: llama.cpp could not make an F16 copy (code {rc}); try --weights file")
        os.replace(partial, out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the F16 copy: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return out


def _whole(copy: Path, weights: int) -> bool:
    """A cached copy is used only when its header reads, it holds every weight, and it is long enough
    for them at 2 bytes each (a copy cut short by a full disk or an edit is made again)."""
    from engine.backends.gguf_meta import read_gguf_metadata

    try:
        found = read_gguf_metadata(copy, count_weights=True)
        return int(found["weights"]) == weights and copy.stat().st_size >= 2 * weights
    except (UserError, OSError):
        return False
