"""FSDP (torch's fully_shard) for `train --processes N --strategy fsdp`: each rank keeps 1/N of
the base weights, the LoRA weights and their optimizer state, for a bf16 base too large for one
GPU. It runs on CPU with gloo as well, which is how the tests check it.

Checkpoints stay in the one-process format: the sharded LoRA tensors and optimizer state are
gathered to full tensors (a collective every rank joins), rank 0 writes them, and on load every
rank takes its shard of the full tensors again. So a checkpoint written on N FSDP ranks resumes on
one process, on DDP ranks, or on M FSDP ranks, and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def shard(model: Any, device: str) -> None:
    """Shard every decoder layer, then the rest of the model, over all ranks (in place)."""
    import torch.distributed as td
    from torch.distributed.device_mesh import init_device_mesh

    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError as exc:
        from engine.errors import UserError

        raise UserError("--strategy fsdp needs torch 2.6 or newer (fully_shard); use --strategy ddp") from exc

    mesh = init_device_mesh(device, (td.get_world_size(),))
    policy = MixedPrecisionPolicy() if device != "cuda" else _bf16_policy()
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not layers:
        from engine.errors import UserError

        raise UserError("--strategy fsdp found no decoder layers to shard in this model; use --strategy ddp")
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)


def _bf16_policy() -> Any:
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def full(t: Any) -> Any:
    """A sharded tensor gathered whole on every rank (a collective), on the CPU; others as they are."""
    from torch.distributed.tensor import DTensor

    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu()


def local_shard(whole: Any, like: Any) -> Any:
    """This rank's piece of `whole`, laid out as the sharded parameter `like`."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor):
        return whole.to(like.device, like.dtype)
    return distribute_tensor(whole.to(like.device, like.dtype), like.device_mesh, like.placements)


def full_weights(named: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    return {name: full(p) for name, p in named}


def load_weights(named: Sequence[tuple[str, Any]], saved: dict[str, Any]) -> None:
    """Copy full tensors (keyed as peft saves them: no adapter name) into the sharded parameters."""
    import torch

    missing = []
    with torch.no_grad():
        for name, p in named:
            key = name.replace(".default.", ".")
            if key not in saved:
                missing.append(key)
                continue
            p.copy_(local_shard(saved[key], p))
    if missing:
        raise ValueError(f"{len(missing)} trained tensors missing from the checkpoint (first: {missing[0]})")


def full_optimizer_state(optimizer: Any) -> dict[str, Any]:
    """optimizer.state_dict() with every sharded tensor gathered whole (the one-process format)."""
    state = optimizer.state_dict()
    return {
        "state": {
            k: {n: full(v) if hasattr(v, "shape") and v.dim() else v for n, v in s.items()}
            for k, s in state["state"].items()
        },  # fmt: skip
        "param_groups": state["param_groups"],
    }


def load_optimizer_state(optimizer: Any, params: Sequence[Any], state: dict[str, Any]) -> None:
    """Load a one-process optimizer state, each full tensor cut to its parameter's shard."""
    sharded = {}
    for k, s in state["state"].items():
        p = params[int(k)]
        sharded[k] = {n: local_shard(v, p) if hasattr(v, "shape") and v.dim() else v for n, v in s.items()}
    optimizer.load_state_dict({"state": sharded, "param_groups": state["param_groups"]})


def held(model: Any) -> tuple[int, int]:
    """(parameters this rank holds, parameters of the whole model)."""
    from torch.distributed.tensor import DTensor

    mine = total = 0
    for p in model.parameters():
        total += p.numel()
        mine += p.to_local().numel() if isinstance(p, DTensor) else p.numel()
    return mine, total
