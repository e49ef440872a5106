"""What the installed transformers can load: model types, and GGUF architectures."""

from __future__ import annotations


def transformers_types() -> tuple[set[str], set[str]]:
    """Model types transformers knows, and the GGUF architectures it can load for training."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES as gguf_archs
    except ImportError:  # transformers without GGUF support (or without the gguf package)
        gguf_archs = []
    return set(CONFIG_MAPPING_NAMES), {a.replace("-", "_") for a in gguf_archs}
