"""Capability probes for `doctor`: each imports its library and tries it for real."""

from __future__ import annotations


def torch() -> tuple[bool, str]:
    import torch

    return True, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def cuda() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU: training runs on the CPU (small models only)"
    props = torch.cuda.get_device_properties(0)
    return True, f"{props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}"


def bnb() -> tuple[bool, str]:
    import bitsandbytes as bnb
    import torch
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(64, 64, device=device, dtype=torch.float32)
    q, state = quantize_4bit(x, quant_type="nf4")
    err = (dequantize_4bit(q, state) - x).abs().mean().item()
    return err < 0.2, f"bitsandbytes {bnb.__version__}: 4-bit NF4 round trip on {device} (mean error {err:.3f})"


def llama_cpp() -> tuple[bool, str]:
    import llama_cpp

    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return True, f"llama-cpp-python {llama_cpp.__version__}, GPU offload {'yes' if gpu else 'no'}"


def embedder() -> tuple[bool, str]:
    from engine.backends.embedder import default_embedder_path

    path = default_embedder_path()
    return (path / "config.json").is_file(), f"all-MiniLM-L6-v2 at {path}"


def hnswlib() -> tuple[bool, str]:
    import hnswlib

    hnswlib.Index(space="cosine", dim=4).init_index(max_elements=1)
    return True, "hnswlib index created"
