"""Data-parallel training across processes (torchrun): which rank this is, and the few collectives
the step loop needs, over torch.distributed (gloo on CPU, NCCL on CUDA).

The loop does not wrap the model in DistributedDataParallel. Each optimizer step's micro-batches
are dealt to the ranks in turn; a rank may get one fewer than another (length-grouped batches, the
last step of an epoch), and every micro-batch's loss is weighed by the response tokens of the
whole step. DDP's per-backward hooks would deadlock on uneven counts and average instead of
weighing, so the LoRA gradients are summed across ranks in one flat all-reduce after the step's
backward passes. Every rank then holds the same gradients, takes the same optimizer step and keeps
the same (replicated) optimizer state, so a checkpoint written by rank 0 resumes on any number of
processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among `world` training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = "ddp"
    """ddp: every rank holds the whole model; fsdp: each holds a shard (engine.backends.fsdp)"""

    @property
    def fsdp(self) -> bool:
        return self.spread and self.strategy == "fsdp"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def spread(self) -> bool:
        return self.world > 1

    def mine(self, items: Sequence[T]) -> list[T]:
        """This rank's share of a step's micro-batches: every world-th one, from its rank on."""
        return list(items[self.rank :: self.world])

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all ranks (in float64: token counts stay exact)."""
        if not self.spread:
            return list(values)
        import torch
        import torch.distributed as td

        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        td.all_reduce(t, op=td.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop asked of any rank stops them all together)."""
        return bool(self.sum([1.0 if flag else 0.0])[0]) if self.spread else flag

    def sum_grads(self, params: Sequence[Any]) -> None:
        """Sum the gradients of `params` over all ranks, in place, in one flat all-reduce. A rank that
        had no micro-batch this step contributes zeros."""
        if not self.spread:
            return
        import torch
        import torch.distributed as td

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1).float() for p in params])
        td.all_reduce(flat, op=td.ReduceOp.SUM)
        at = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[at : at + n].view_as(p.grad).to(p.grad.dtype))
            at += n

    def barrier(self) -> None:
        if self.spread:
            import torch.distributed as td

            td.barrier()

    def close(self) -> None:
        if self.spread:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()

    def _device(self) -> str:
        import torch.distributed as td

        return "cuda" if td.get_backend() == "nccl" else "cpu"


SINGLE = Ranks()


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def from_env(device: str = "auto", strategy: str = "ddp") -> Ranks:
    """The ranks torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK), with the
    process group joined: NCCL when training on CUDA, gloo otherwise. One process: SINGLE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    import datetime

    import torch
    import torch.distributed as td

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=float(os.environ.get("SELFSPEC_DIST_TIMEOUT_S", "600")))
    td.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return Ranks(rank, world, local, strategy)


def micro_seed(seed: int, step: int, micro: int) -> int:
    """The RNG seed of one micro-batch (dropout): the same whichever rank runs it, so a run on N
    processes draws the masks a run on one does, and a resume needs no RNG state to match."""
    return (seed * 1_000_003 + step * 4099 + micro) % (2**63 - 1)
