"""LoRA / QLoRA training with torch + transformers + peft: one loop for CPU and CUDA.

The loop is ours, not transformers' Trainer: it batches examples of similar length (so little
padding is computed), masks the prompt out of the loss, weighs the loss by response tokens across
gradient accumulation, checks that every trainable tensor got a gradient, and can save and restore
everything a bit-identical resume needs (adapter, optimizer, scheduler, RNG, data position).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.backends import state_io
from engine.backends.base_load import load_base
from engine.backends.dist import SINGLE, Ranks, micro_seed
from engine.backends.encoding import IGNORE, Encoded, TrainExample, encode, epoch_batches
from engine.errors import UserError
from engine.spec.prompts import alpaca_prompt

__all__ = [
    "IGNORE",
    "Encoded",
    "LoraRun",
    "StepLoop",
    "TrainExample",
    "alpaca_prompt",
    "encode",
    "epoch_batches",
    "load_base",
]


def steps_per_epoch(n_examples: int, micro: int, accumulation: int) -> int:
    return math.ceil(math.ceil(n_examples / micro) / accumulation)


@dataclass
class Position:
    """Where training is: optimizer steps done, and the epoch and step inside it."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    tokens: int = 0
    val_losses: list[float] = field(default_factory=list)


class StepLoop:
    """A model with some trainable parameters, its optimizer and schedule, stepped one optimizer step
    at a time. LoRA training (LoraRun) and a mixture's router training (engine.backends.moe) share it:
    a subclass says how the model is wrapped (`wrap`) and how its trained weights are saved and read."""

    WEIGHTS = "adapter_model.safetensors"
    """the file of trained weights a checkpoint holds"""
    NOTHING_TO_TRAIN = "the model has no trainable parameters"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        cfg: Any,
        train: list[Encoded],
        val: list[Encoded],
        info: dict[str, Any],
        threads: int,
        ranks: Ranks = SINGLE,
    ) -> None:
        import torch
        from transformers import get_scheduler

        torch.set_num_threads(max(1, threads))
        self.cfg, self.train, self.val, self.info, self.ranks = cfg, train, val, info, ranks
        self.device = info["device"]
        self.pad = tokenizer.pad_token_id
        torch.manual_seed(cfg.seed)
        self.model = self.wrap(model)
        if ranks.fsdp:
            from engine.backends import fsdp

            fsdp.shard(self.model, "cuda" if self.device == "cuda" else "cpu")
        self.trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not self.trainable:
            raise UserError(self.NOTHING_TO_TRAIN)
        self.optimizer = torch.optim.AdamW(
            [p for _, p in self.trainable], lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        per_epoch = steps_per_epoch(len(train), cfg.micro_batch, cfg.accumulation)
        self.total_steps = per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.per_epoch = per_epoch
        self.scheduler = get_scheduler(
            cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup",
            self.optimizer,
            num_warmup_steps=int(cfg.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        self.lengths = [len(e.input_ids) for e in train]
        self.pos = Position()
        self._order: tuple[int, list[list[int]]] | None = None

    def wrap(self, model: Any) -> Any:
        """The model to step, with requires_grad set on exactly the parameters to train."""
        return model

    def save_weights(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))

    def load_weights(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.model, load_file(str(folder / self.WEIGHTS)))

    # ---- batches ------------------------------------------------------------------------------

    def _collate(self, items: list[Encoded]) -> tuple[Any, Any, Any]:
        import torch

        width = max(len(e.input_ids) for e in items)
        ids = torch.full((len(items), width), self.pad, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, e in enumerate(items):
            n = len(e.input_ids)
            ids[row, :n] = torch.tensor(e.input_ids)
            labels[row, :n] = torch.tensor(e.labels)
            mask[row, :n] = 1
        return ids.to(self.device), labels.to(self.device), mask.to(self.device)

    def _loss_sum(self, items: list[Encoded]) -> tuple[Any, int]:
        """Summed token cross-entropy over the response tokens of a micro-batch, and their count."""
        import torch

        ids, labels, mask = self._collate(items)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)),
            shift_labels.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        return loss, int((shift_labels != IGNORE).sum())

    def _epoch_order(self, epoch: int) -> list[list[int]]:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_batches(self.lengths, self.cfg.micro_batch, self.cfg.seed, epoch))
        return self._order[1]

    def done(self) -> bool:
        return self.pos.step >= self.total_steps

    # ---- one optimizer step -------------------------------------------------------------------

    def step(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
        """One optimizer step over `accumulation` micro-batches (dealt to the ranks in turn when
        training is spread over processes); None if stopped before it finished. Spread over
        processes, a stop is only taken between steps (drive asks every rank together)."""
        import torch

        order = self._epoch_order(self.pos.epoch)
        first = self.pos.step_in_epoch * self.cfg.accumulation
        group = order[first : first + self.cfg.accumulation]
        items = [[self.train[i] for i in b] for b in group]
        targets = sum(e.response_tokens for b in items for e in b)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        started = time.perf_counter()
        total_loss = 0.0
        tokens = 0
        mine = self.ranks.mine(list(enumerate(items)))
        scale = 1.0
        if self.ranks.fsdp:  # every rank runs as many passes (each gathers weights); FSDP averages
            mine += [(-1, items[0])] * (-(-len(items) // self.ranks.world) - len(mine))  # weighed 0
            scale = float(self.ranks.world)
        for micro, batch in mine:
            if not self.ranks.spread and should_stop():
                self.optimizer.zero_grad(set_to_none=True)
                return None
            torch.manual_seed(micro_seed(self.cfg.seed, self.pos.step, micro))  # dropout: rank-independent
            try:
                loss_sum, _ = self._loss_sum(batch)
                weight = 0.0 if micro < 0 else scale
                (loss_sum * weight / max(1, targets)).backward()
                if micro < 0:
                    continue
            except torch.cuda.OutOfMemoryError as exc:
                raise UserError(self._oom_advice()) from exc
            except RuntimeError as exc:
                if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
                    raise UserError(self._oom_advice()) from exc
                raise
            total_loss += float(loss_sum.detach())
            tokens += sum(len(e.input_ids) for e in batch)
        missing = [n for n, p in self.trainable if p.grad is None] if mine else []
        if missing:
            raise RuntimeError(
                f"{len(missing)} trainable tensors got no gradient this step (first: {missing[0]}); "
                "the model instance cannot be trained (was it used for 4-bit generation before?)"
            )
        if self.ranks.spread:
            if not self.ranks.fsdp:  # FSDP reduced the gradients in each backward pass
                self.ranks.sum_grads([p for _, p in self.trainable])
            total_loss, summed_tokens = self.ranks.sum([total_loss, float(tokens)])
            tokens = int(summed_tokens)
        if self.cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for _, p in self.trainable], self.cfg.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.pos.step += 1
        self.pos.step_in_epoch += 1
        self.pos.tokens += tokens
        if self.pos.step_in_epoch >= self.per_epoch:
            self.pos.epoch += 1
            self.pos.step_in_epoch = 0
        return {
            "loss": total_loss / max(1, targets),
            "lr": lr,
            "tokens": tokens,
            "seconds": time.perf_counter() - started,
        }

    def epoch_just_ended(self) -> bool:
        return self.pos.step_in_epoch == 0 and self.pos.step > 0

    def _oom_advice(self) -> str:
        c = self.cfg
        return (
            f"out of memory at micro-batch {c.micro_batch}, max length {c.max_length}: lower --micro-batch "
            "(the effective --batch-size stays; accumulation grows), lower --max-length"
            + (", or use --quantize 4bit" if not self.info["four_bit"] and self.device == "cuda" else "")
        )

    def validate(self) -> float | None:
        """Mean response-token loss on the held-out examples (their micro-batches dealt to the ranks)."""
        import torch

        if not self.val:
            return None
        self.model.eval()
        total, count = 0.0, 0
        every = range(0, len(self.val), self.cfg.micro_batch)
        starts = list(self.ranks.mine(every))
        if self.ranks.fsdp:  # the same number of passes on every rank; the extra ones are not counted
            starts += [-1] * (-(-len(every) // self.ranks.world) - len(starts))
        with torch.no_grad():
            for start in starts:
                loss_sum, n = self._loss_sum(self.val[max(0, start) : max(0, start) + self.cfg.micro_batch])
                if start >= 0:
                    total += float(loss_sum)
                    count += n
        total, count_f = self.ranks.sum([total, float(count)])
        return total / max(1, int(count_f))

    def peak_memory_mb(self) -> float:
        import torch

        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # ---- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, folder: Path, keep: int) -> Path | None:
        """Adapter, optimizer, scheduler, RNG and position; written aside, then renamed into place.
        Every rank calls it (FSDP gathers the shards first); rank 0 writes and returns the folder."""
        import numpy as np
        import torch

        weights, optimizer = self._full_state()
        if not self.ranks.main:
            return None
        final = folder / f"step-{self.pos.step:07d}"
        partial = folder / (final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self._write_weights(partial, weights)
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        }
        # no pickle: tensors in safetensors, the rest in JSON (state_io)
        state_io.save_state(partial, {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(), "rng": rng})
        (partial / "position.json").write_text(json.dumps(vars(self.pos)))
        for f in partial.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in sorted(p for p in folder.glob("step-*") if not p.name.endswith(".partial"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _full_state(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(trained weights, optimizer state) in full: gathered from the shards under FSDP (every rank
        must call it), else None for the weights (save_weights reads the model) and the state as is."""
        if self.ranks.fsdp:
            from engine.backends import fsdp

            return fsdp.full_weights(self.trainable), fsdp.full_optimizer_state(self.optimizer)
        return None, self.optimizer.state_dict() if self.ranks.main else None

    def _write_weights(self, folder: Path, weights: dict[str, Any] | None) -> None:
        if weights is None:
            self.save_weights(folder)
        else:
            self.model.save_pretrained(str(folder), state_dict=weights)

    def load_checkpoint(self, path: Path) -> None:
        import numpy as np
        import torch

        try:
            state = state_io.load_state(path)
        except state_io.StateFormatError as exc:
            raise UserError(f"checkpoint {path.name}: {exc}; delete that folder to resume from an older one") from exc
        if self.ranks.fsdp:
            from safetensors.torch import load_file

            from engine.backends import fsdp

            fsdp.load_weights(self.trainable, load_file(str(path / self.WEIGHTS)))
            fsdp.load_optimizer_state(self.optimizer, [p for _, p in self.trainable], state["optimizer"])
        else:
            self.load_weights(path)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        self.pos = Position(**json.loads((path / "position.json").read_text()))

    def save_adapter(self, folder: Path) -> None:
        """The trained weights alone; every rank calls it, rank 0 writes."""
        weights, _ = self._full_state()
        if not self.ranks.main:
            return
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self._write_weights(partial, weights)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)


class LoraRun(StepLoop):
    """LoRA (or QLoRA on a 4-bit base) on every linear projection of the model, through peft."""

    NOTHING_TO_TRAIN = "LoRA found no linear projection modules to adapt in this model"

    def wrap(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        cfg = self.cfg
        checkpointing = cfg.gradient_checkpointing == "on" or (
            cfg.gradient_checkpointing == "auto" and self.device == "cuda"
        )
        if self.info["four_bit"]:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        elif checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        lora = LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)


def newest_checkpoint(folder: Path, weights: str = StepLoop.WEIGHTS) -> Path | None:
    done = sorted(p for p in folder.glob("step-*") if not p.name.endswith(".partial") and p.is_dir())
    for p in reversed(done):
        # checkpoints of older versions (pickled .pt files) are never read
        if (p / "position.json").exists() and (p / weights).exists() and state_io.has_state(p):
            return p
    return None
