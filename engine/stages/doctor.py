"""What this machine can do: each check runs on its own and reports, never raises."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from engine import paths
from engine.stages import models


def _check(fn: Callable[[], tuple[bool, str]]) -> dict[str, Any]:
    try:
        ok, detail = fn()
    except Exception as exc:  # doctor reports every failure instead of stopping
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "detail": detail}


def _torch() -> tuple[bool, str]:
    import torch

    return True, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _cuda() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU: training runs on the CPU (small models only)"
    props = torch.cuda.get_device_properties(0)
    return True, f"{props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}"


def _bnb() -> tuple[bool, str]:
    import torch
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(64, 64, device=device, dtype=torch.float32)
    q, state = quantize_4bit(x, quant_type="nf4")
    err = (dequantize_4bit(q, state) - x).abs().mean().item()
    return err < 0.2, f"bitsandbytes {bnb.__version__}: 4-bit NF4 round trip on {device} (mean error {err:.3f})"


def _llama_cpp() -> tuple[bool, str]:
    import llama_cpp

    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return True, f"llama-cpp-python {llama_cpp.__version__}, GPU offload {'yes' if gpu else 'no'}"


def _embedder() -> tuple[bool, str]:
    from engine.backends.embedder import default_embedder_path

    path = default_embedder_path()
    return (path / "config.json").is_file(), f"all-MiniLM-L6-v2 at {path}"


def _hnswlib() -> tuple[bool, str]:
    import hnswlib

    hnswlib.Index(space="cosine", dim=4).init_index(max_elements=1)
    return True, "hnswlib index created"


def run_doctor(db: Database) -> dict[str, Any]:
    home = paths.home()
    free = shutil.disk_usage(home).free
    checks = {
        "torch": _check(_torch),
        "cuda": _check(_cuda),
        "bitsandbytes_4bit": _check(_bnb),
        "llama_cpp": _check(_llama_cpp),
        "embedder": _check(_embedder),
        "hnswlib": _check(_hnswlib),
        "disk": {"ok": free > 2 * 2**30, "detail": f"{free / 2**30:.1f} GiB free in {home}"},
        "cpu": {"ok": True, "detail": f"{os.cpu_count()} cores"},
    }
    found = models.describe_all(db)
    checks["models"] = {
        "ok": all(m["present"] for m in found),
        "detail": ", ".join(f"{m['name']} ({'ok' if m['present'] else 'missing'})" for m in found),
    }
    return checks
