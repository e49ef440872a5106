"""Driving a StepLoop (LoRA or router training) to its end: progress with loss, rate and epoch,
validation at each epoch's end, a step record per optimizer step, checkpoints every N steps, and on
cancel a checkpoint then Interrupted. Training and mixture training share it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.stages.context import Context, Interrupted
from engine.store.steplog import StepRecord


@dataclass
class Outcome:
    last_loss: float | None
    val_loss: float | None
    tokens_here: int
    seconds: float

    def tokens_per_s(self) -> float | None:
        return round(self.tokens_here / self.seconds, 1) if self.seconds > 0 and self.tokens_here else None


def drive(
    ctx: Context,
    run: Any,
    checkpoints: Path,
    cfg: Any,
    record: Callable[[StepRecord], None],
    stage: str = "train",
) -> Outcome:
    """Step `run` until done; `record` stores each step. Raises Interrupted after a checkpoint on cancel.
    Spread over processes (run.ranks), only rank 0 records, reports and writes checkpoints."""
    progress = ctx.progress(stage, run.total_steps, "steps", done=run.pos.step)
    started = time.perf_counter()
    tokens_here = 0
    last_loss: float | None = None
    val_loss: float | None = run.pos.val_losses[-1] if run.pos.val_losses else None

    def keep(out: dict[str, float], val: float | None) -> None:
        p = run.pos
        record(StepRecord(p.step, p.epoch, out["loss"], out["lr"], int(out["tokens"]), out["seconds"], val))

    ranks = run.ranks
    while not run.done():
        out = run.step(ctx.should_stop)
        step_val = None
        if out is not None and (run.epoch_just_ended() or run.done()):
            step_val = run.validate()
            if step_val is not None:
                run.pos.val_losses.append(step_val)
                val_loss = step_val
        # spread over processes, every rank takes a stop at the same step (a collective per step)
        stopping = ranks.any(ctx.should_stop()) if ranks.spread else ctx.should_stop()
        if out is None or stopping:
            if out is not None and ranks.main:
                keep(out, step_val)
            saved = run.save_checkpoint(checkpoints, cfg.keep_checkpoints)  # every rank: FSDP gathers
            if saved is not None:
                ctx.log(f"stopped; checkpoint {saved.name} written: running it again resumes from it")
            ranks.barrier()
            raise Interrupted()
        last_loss = out["loss"]
        tokens_here += int(out["tokens"])
        if run.pos.step % cfg.checkpoint_every == 0 and not run.done():
            run.save_checkpoint(checkpoints, cfg.keep_checkpoints)  # every rank: FSDP gathers
        if not ranks.main:
            continue
        keep(out, step_val)
        elapsed = time.perf_counter() - started
        progress.extra = {
            "loss": round(out["loss"], 4),
            "lr": out["lr"],
            "epoch": round(run.pos.step / max(1, run.per_epoch), 3),  # epochs done, from the step alone
            "epochs": cfg.epochs,
            "tokens_per_s": round(tokens_here / elapsed, 1) if elapsed > 0 else None,
            "val_loss": round(val_loss, 4) if val_loss is not None else None,
            "step_loss": {"step": run.pos.step, "loss": out["loss"], "val_loss": step_val},
            **({"processes": ranks.world} if ranks.spread else {}),
        }
        progress.advance(1, force=True)
    return Outcome(last_loss, val_loss, tokens_here, time.perf_counter() - started)
