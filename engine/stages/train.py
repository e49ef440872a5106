"""Specialization: train a LoRA adapter (an expert) on the project's reviewed examples.

A training run freezes its data at the start (a snapshot file beside the adapter, with its
fingerprint in the store), so review can go on while it trains and a resume sees the same data.
Checkpoints hold everything a bit-identical continuation needs; rerunning `train` resumes the
project's unfinished adapter from its newest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from engine import paths
from engine.backends.dist import SINGLE, Ranks
from engine.errors import UserError
from engine.spec.kinds import JobStatus
from engine.spec.train import TrainConfig, build, describe_errors, run_control
from engine.stages import models
from engine.stages.context import Context, Interrupted
from engine.stages.steps import drive
from engine.store import adapters
from engine.store.adapters import Adapter
from engine.store.examples import training_set

UNFINISHED = (JobStatus.TRAINING, JobStatus.INTERRUPTED, JobStatus.FAILED)
DATA_FILE = "data.jsonl"


def snapshot(folder: Path, rows: list[dict[str, Any]]) -> str:
    """Write the training data once, atomically; its sha256 is the data fingerprint."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    partial = folder / (DATA_FILE + ".partial")
    partial.write_bytes(body)
    with partial.open("rb") as fh:
        os.fsync(fh.fileno())
    partial.replace(folder / DATA_FILE)
    return hashlib.sha256(body).hexdigest()


def open_training(ctx: Context, options: dict[str, Any], name: str | None, resume: str | None, new: bool) -> Adapter:
    """The adapter to train: --resume NAME, the project's unfinished newest one, or a new one."""
    from engine.stages.resume import fresh, reconcile

    if name is not None:
        paths.validate_name(name, "adapter")  # before anything else: a name becomes a folder
    project = ctx.need_project()
    existing = adapters.list_for(ctx.db, project)
    if resume:
        adapter: Adapter | None = adapters.by_name(ctx.db, project, resume)
        assert adapter is not None
        if adapter.status == "done":
            raise UserError(f"adapter {resume!r} is already trained; pass --new (and --name) to train another")
    else:
        unfinished = [a for a in existing if a.status in UNFINISHED]
        adapter = unfinished[-1] if unfinished and not new else None
    if adapter is None:
        return _new_adapter(ctx, fresh(options, build, describe_errors), name, existing)
    stored = TrainConfig.model_validate(adapter.config["train"])
    what = f"adapter {adapter.name!r}"
    updated, changed = reconcile(what, stored, options, build, run_control(), describe_errors, "to train another")
    if changed:
        adapters.set_config(ctx.db, adapter.id, {**adapter.config, "train": updated.model_dump(mode="json")})
        adapter = adapters.get(ctx.db, adapter.id)
    ctx.log(f"resuming adapter {adapter.name!r} ({adapter.status})")
    return adapter


def _new_adapter(ctx: Context, cfg: TrainConfig, name: str | None, existing: list[Adapter]) -> Adapter:
    """Freeze the training set and record a new adapter (its folder named after it)."""
    project = ctx.need_project()
    models.resolve(ctx.db, project.base_model)
    rows = [
        {"id": e.id, "version": e.version, "instruction": e.instruction, "input": e.input, "output": e.output}
        for e in training_set(ctx.db, project, cfg.include_pending, cfg.generations)
    ]
    if not rows:
        raise UserError(
            "the training set is empty: accept examples in Review (v) or with `review accept`,"
            " or pass --include-pending to train on unreviewed ones"
        )
    taken = {a.name for a in existing}
    name = (
        name
        if name is not None
        else next(f"expert-{i}" for i in range(1, len(taken) + 2) if f"expert-{i}" not in taken)
    )
    folder = paths.child(ctx.workdir / "adapters", name, "adapter")
    if name in taken:
        raise UserError(f"{project.name} already has an adapter named {name!r}")
    fingerprint = snapshot(folder, rows)
    body = {"train": cfg.model_dump(mode="json"), "model": project.base_model}
    adapter = adapters.create(ctx.db, project, name, body, fingerprint, len(rows), str(folder))
    ctx.log(f"new adapter {name!r}: {len(rows)} examples, fingerprint {fingerprint[:12]}")
    return adapter


def split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for training and the held-out validation part (at least one each when asked and possible)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * fraction)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def run_training(ctx: Context, adapter: Adapter, processes: int = 1, strategy: str = "ddp") -> dict[str, Any]:
    """Train in this process, or on `processes` data-parallel ranks (engine.stages.train_launch)."""
    try:
        if processes > 1:
            from engine.stages.train_launch import check_processes, launch

            check_processes(processes, TrainConfig.model_validate(adapter.config["train"]).device)
            return launch(ctx, adapter, processes, strategy)
        return _train(ctx, adapter)
    except Interrupted:
        adapters.set_status(ctx.db, adapter.id, "interrupted")
        raise
    except BaseException:
        adapters.set_status(ctx.db, adapter.id, "failed")
        raise


def _train(ctx: Context, adapter: Adapter, ranks: Ranks = SINGLE) -> dict[str, Any]:
    """Train (or resume) `adapter` in this process; under torchrun this is one rank of several, and
    only rank 0 writes the store, checkpoints and the adapter (engine.stages.train_launch)."""
    from engine.backends import trainer

    cfg = TrainConfig.model_validate(adapter.config["train"])
    kind, path, _ = models.resolve(ctx.db, adapter.base_model)
    if kind not in ("gguf", "hf"):
        raise UserError(f"{adapter.base_model!r} is a {kind!r} model with no weights transformers can train")
    folder = Path(adapter.path)
    if not paths.is_inside(folder, ctx.workdir / "adapters"):
        raise UserError(
            f"adapter {adapter.name!r} points at {folder}, outside the project's adapters folder;"
            " it will not be written there: train a new adapter with --new"
        )
    data_file = folder / DATA_FILE
    if not data_file.exists():
        raise UserError(f"the data snapshot of adapter {adapter.name!r} is missing ({data_file}); train with --new")
    body = data_file.read_bytes()
    if hashlib.sha256(body).hexdigest() != adapter.fingerprint:
        raise UserError(f"{data_file} changed since training started (fingerprint mismatch); train with --new")
    rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    examples = [trainer.TrainExample(r["instruction"], r["input"], r["output"]) for r in rows]
    train_idx, val_idx = split(len(examples), cfg.val_fraction, cfg.seed)

    ctx.log(f"loading {adapter.base_model} for training ...")
    model, tokenizer, info = trainer.load_base(kind, path, cfg.device, cfg.quantize, stay_on_cpu=ranks.fsdp)
    if ranks.fsdp and info["four_bit"]:
        raise UserError("--strategy fsdp shards a bf16 base; a 4-bit base trains with --strategy ddp")
    ctx.check_stop()
    encoded_train, cut = trainer.encode(tokenizer, [examples[i] for i in train_idx], cfg.prompt_format, cfg.max_length)
    encoded_val, _ = trainer.encode(tokenizer, [examples[i] for i in val_idx], cfg.prompt_format, cfg.max_length)
    if not encoded_train:
        raise UserError(f"no training example has a response within --max-length {cfg.max_length}; raise it")
    if cut and ranks.main:
        ctx.log(
            f"{cut} example(s) left out: their prompt alone is longer than --max-length {cfg.max_length}", "warning"
        )
    run = trainer.LoraRun(model, tokenizer, cfg, encoded_train, encoded_val, info, ctx.threads, ranks)
    checkpoints = folder / "checkpoints"
    last = trainer.newest_checkpoint(checkpoints)
    if last is not None:
        run.load_checkpoint(last)
        if ranks.main:
            adapters.forget_steps_after(ctx.db, adapter.id, run.pos.step)
            ctx.log(f"resumed from checkpoint {last.name} (step {run.pos.step} of {run.total_steps})")
    if ranks.main:
        adapters.set_status(ctx.db, adapter.id, "training")
    mode = f"{'QLoRA 4-bit' if info['four_bit'] else 'LoRA'} on {info['device']} ({info['dtype']})"
    mode += f", {ranks.world} processes ({ranks.strategy})" if ranks.spread else ""
    if ranks.main:
        ctx.log(
            f"training {adapter.name!r}: {len(encoded_train)} examples, {len(encoded_val)} held out, "
            f"{run.total_steps} steps of {cfg.batch_size} ({cfg.micro_batch} x {cfg.accumulation}), {mode}"
        )
        if ranks.fsdp:
            from engine.backends.fsdp import held

            mine, total = held(run.model)
            ctx.log(f"fsdp: rank 0 holds {mine:,} of the model's {total:,} parameters")
        if ranks.world > cfg.accumulation:
            ctx.log(
                f"{ranks.world} processes but {cfg.accumulation} micro-batch(es) per step: some processes wait;"
                f" raise --batch-size to {cfg.micro_batch * ranks.world} or more",
                "warning",
            )
    outcome = drive(ctx, run, checkpoints, cfg, lambda rec: adapters.record_step(ctx.db, adapter.id, rec))
    run.save_adapter(folder / "adapter")  # every rank: FSDP gathers
    if not ranks.main:
        return {}
    metrics = {
        "steps": run.pos.step,
        "final_loss": outcome.last_loss,
        "val_loss": outcome.val_loss,
        "val_losses": run.pos.val_losses,
        "tokens": run.pos.tokens,
        "tokens_per_s": outcome.tokens_per_s(),
        "peak_memory_mb": round(run.peak_memory_mb(), 1),
        "device": info["device"],
        "four_bit": info["four_bit"],
        "processes": ranks.world,
        "examples": len(encoded_train),
        "held_out": len(encoded_val),
        "left_out_too_long": cut,
    }
    (folder / "selfspec.json").write_text(
        json.dumps(
            {
                "base_model": adapter.base_model,
                "prompt_format": cfg.prompt_format,
                "fingerprint": adapter.fingerprint,
                "config": cfg.model_dump(mode="json"),
                "metrics": metrics,
            },
            indent=2,
        )
    )
    adapters.set_status(ctx.db, adapter.id, "done", metrics)
    project = ctx.need_project()
    if adapters.current(ctx.db, project) is None:
        adapters.set_current(ctx.db, project, adapter.id)
    return {
        "adapter": adapter.name,
        "path": str(folder / "adapter"),
        **{k: v for k, v in metrics.items() if k != "val_losses"},
    }
