"""A fresh transformers instance of a base model for training: dequantized from GGUF, or from a
Hugging Face folder (4-bit NF4 through bitsandbytes on CUDA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import UserError


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is available here (use --device cpu)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_base(
    kind: str, path: Path, device: str, quantize: str, stay_on_cpu: bool = False
) -> tuple[Any, Any, dict[str, Any]]:
    """A fresh model instance and its tokenizer, ready for LoRA. `stay_on_cpu`: in the device's
    dtype but left in host memory (FSDP moves each rank's shard to its GPU).

    Always a new instance: bitsandbytes repacks 4-bit weights after generate() on CPU, after
    which training the same instance silently gets no gradients.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = _device(device)
    four_bit = quantize == "4bit" or (quantize == "auto" and dev == "cuda")
    if four_bit and dev != "cuda":
        raise UserError("4-bit QLoRA needs a CUDA GPU here; use --quantize none on CPU")
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if kind == "gguf":
        folder, kwargs["gguf_file"] = path.parent, path.name
        if four_bit:
            four_bit = False  # GGUF weights are dequantized on load; quantizing them again would lose more
    elif kind == "hf":
        folder = path
    else:
        raise UserError(f"cannot train a {kind!r} model")
    if four_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # this rank's GPU under torchrun
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, **({"gguf_file": kwargs["gguf_file"]} if kind == "gguf" else {})
        )
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except Exception as exc:  # any failure to read the user's model files is a problem with those files
        first = (str(exc).splitlines() or [""])[0][:300]
        raise UserError(f"cannot load the base model from {path}: {type(exc).__name__}: {first}") from exc
    if kind == "gguf":  # the weights are dequantized; the GGUF "quantizer" would only block training and saving
        setattr(model, "hf_quantizer", None)  # noqa: B010
        setattr(model, "is_quantized", False)  # noqa: B010
        if hasattr(model.config, "quantization_config"):  # else save_pretrained writes a GGUF marker
            del model.config.quantization_config
    if not four_bit and not stay_on_cpu:
        model = model.to(dev)  # type: ignore[arg-type]
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, {"device": dev, "four_bit": four_bit, "dtype": str(dtype).replace("torch.", "")}
