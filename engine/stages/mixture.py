"""Mixtures of experts (Self-MoE): experts of several projects behind one learned router.

`create` names the experts (finished adapters on one base model); `train_router` freezes the union
of the experts' own training data (each adapter's data snapshot, checked against its fingerprint),
trains only the router on it with the training loop LoRA uses (progress, cancel, checkpoints,
resume after kill -9), and measures on held-out examples which expert each domain's tokens go to.
`ask` answers with token-level routing in transformers (exact).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.spec import mixture as spec
from engine.spec.kinds import JobStatus
from engine.spec.mixture import RouterConfig
from engine.stages import models
from engine.stages.context import Context, Interrupted
from engine.stages.train import DATA_FILE, snapshot, split
from engine.store import adapters, mixtures, projects
from engine.store.mixtures import Mixture

MAX_EXPERTS = 8
ROUTER_FOLDER = "router"
SHARE_SAMPLE = 8
"""examples per expert the routing shares are measured on"""


def folder_of(name: str) -> Path:
    return paths.child(paths.home() / "mixtures", name, "mixture")


def _expert_ref(db: Any, ref: str) -> dict[str, Any]:
    """'project/adapter' (or 'project' for its current expert) -> the stored expert entry."""
    project_name, _, adapter_name = ref.partition("/")
    project = projects.get(db, project_name)
    adapter = adapters.by_name(db, project, adapter_name) if adapter_name else adapters.current(db, project)
    if adapter is None:
        raise UserError(f"{project_name} has no current expert: name one as {project_name}/ADAPTER")
    if adapter.status != JobStatus.DONE:
        raise UserError(
            f"expert {project.name}/{adapter.name} is {adapter.status}, not trained: finish it with `train`"
        )
    peft_folder = Path(adapter.path) / "adapter"
    if not (peft_folder / "adapter_model.safetensors").is_file():
        raise UserError(f"expert {project.name}/{adapter.name}: its weights are missing ({peft_folder})")
    fmt = str(adapter.config.get("train", {}).get("prompt_format", "alpaca"))
    return {
        "project": project.name,
        "adapter": adapter.name,
        "adapter_id": adapter.id,
        "base_model": adapter.base_model,
        "fingerprint": adapter.fingerprint,
        "prompt_format": fmt,
        "path": paths.to_stored(str(peft_folder)),
    }


def create(ctx: Context, name: str, refs: list[str]) -> dict[str, Any]:
    paths.validate_name(name, "mixture")
    if len(refs) < 2:
        raise UserError("a mixture needs at least two experts (--expert PROJECT/ADAPTER, repeated)")
    if len(refs) > MAX_EXPERTS:
        raise UserError(f"a mixture holds at most {MAX_EXPERTS} experts")
    experts = [_expert_ref(ctx.db, r) for r in refs]
    keys = [(e["project"], e["adapter"]) for e in experts]
    if len(set(keys)) != len(keys):
        raise UserError("an expert is named twice")
    bases = sorted({e["base_model"] for e in experts})
    if len(bases) > 1:
        raise UserError(f"the experts were trained on different base models ({', '.join(bases)}); one base is mixed")
    formats = sorted({e["prompt_format"] for e in experts})
    if len(formats) > 1:
        raise UserError(f"the experts were tuned on different prompt formats ({', '.join(formats)})")
    m = mixtures.create(ctx.db, name, bases[0], experts, str(folder_of(name)))
    return {"mixture": m.name, "base_model": m.base_model, "experts": m.expert_names()}


def _union(m: Mixture, cfg: RouterConfig) -> list[dict[str, Any]]:
    """Every expert's own training data (checked against its fingerprint), tagged with the expert."""
    rows: list[dict[str, Any]] = []
    for i, e in enumerate(m.experts):
        data = Path(paths.from_stored(e["path"])).parent / DATA_FILE
        try:
            body = data.read_bytes()
        except OSError as exc:
            raise UserError(f"expert {e['project']}/{e['adapter']}: cannot read its data {data}: {exc}") from exc
        if hashlib.sha256(body).hexdigest() != e["fingerprint"]:
            raise UserError(f"expert {e['project']}/{e['adapter']}: {data} changed since the expert was trained")
        own = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        if cfg.per_expert and len(own) > cfg.per_expert:
            own = random.Random(f"{cfg.seed}:{i}").sample(own, cfg.per_expert)
        rows += [
            {"expert": i, "instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in own
        ]
    return rows


def open_router_training(ctx: Context, name: str, options: dict[str, Any]) -> tuple[Mixture, RouterConfig]:
    """The mixture and the router settings to train with: fresh ones, or the stored ones on resume."""
    from engine.stages.resume import fresh, reconcile

    m = mixtures.by_name(ctx.db, name)
    if m.status == "done":
        raise UserError(f"mixture {name!r} is already trained; create another mixture to train a new router")
    if m.status == "created":
        cfg = fresh(options, spec.build, spec.describe_errors)
        rows = _union(m, cfg)
        fingerprint = snapshot(Path(m.path), rows)
        mixtures.start_training(ctx.db, m.id, cfg.model_dump(mode="json"), fingerprint, len(rows))
        ctx.log(f"mixture {name!r}: {len(rows)} examples from {len(m.experts)} experts, fingerprint {fingerprint[:12]}")
        return mixtures.get(ctx.db, m.id), cfg
    stored = RouterConfig.model_validate(m.config)
    cfg, changed = reconcile(
        f"the router of {name!r}",
        stored,
        options,
        spec.build,
        spec.run_control(),
        spec.describe_errors,
        "(create another mixture)",
    )
    if changed:
        mixtures.set_config(ctx.db, m.id, cfg.model_dump(mode="json"))
    ctx.log(f"resuming the router of {name!r} ({m.status})")
    return mixtures.get(ctx.db, m.id), cfg


def load_experts(m: Mixture) -> list[Any]:
    from engine.backends import moe

    return [
        moe.read_expert(n, Path(paths.from_stored(e["path"]))) for n, e in zip(m.expert_names(), m.experts, strict=True)
    ]


def train_router(ctx: Context, m: Mixture, cfg: RouterConfig) -> dict[str, Any]:
    try:
        return _train(ctx, m, cfg)
    except Interrupted:
        mixtures.set_status(ctx.db, m.id, "interrupted")
        raise
    except BaseException:
        mixtures.set_status(ctx.db, m.id, "failed")
        raise


def _train(ctx: Context, m: Mixture, cfg: RouterConfig) -> dict[str, Any]:
    from engine.backends import moe
    from engine.backends.base_load import load_base
    from engine.backends.encoding import TrainExample, encode
    from engine.backends.trainer import newest_checkpoint
    from engine.stages.steps import drive

    folder = Path(m.path)
    data = folder / DATA_FILE
    body = data.read_bytes() if data.is_file() else b""
    if hashlib.sha256(body).hexdigest() != m.fingerprint:
        raise UserError(f"{data} is missing or changed since the router's training started; create a new mixture")
    rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    kind, path, _ = models.resolve(ctx.db, m.base_model)
    if kind not in ("gguf", "hf"):
        raise UserError(f"{m.base_model!r} is a {kind!r} model with no weights transformers can load")
    experts = load_experts(m)
    ctx.log(f"loading {m.base_model} for router training ...")
    model, tokenizer, info = load_base(kind, path, cfg.device, cfg.quantize)
    ctx.check_stop()
    fmt = m.experts[0].get("prompt_format", "alpaca")
    train_idx, val_idx = split(len(rows), cfg.val_fraction, cfg.seed)
    examples = [TrainExample(r["instruction"], r["input"], r["output"]) for r in rows]
    enc_train, _ = encode(tokenizer, [examples[i] for i in train_idx], fmt, cfg.max_length)
    enc_val, _ = encode(tokenizer, [examples[i] for i in val_idx], fmt, cfg.max_length)
    if not enc_train:
        raise UserError(f"no example has a response within --max-length {cfg.max_length}; raise it")
    run = moe.RouterRun(model, tokenizer, cfg, (enc_train, enc_val), info, ctx.threads, experts)
    checkpoints = folder / "checkpoints"
    last = newest_checkpoint(checkpoints, moe.RouterRun.WEIGHTS)
    if last is not None:
        run.load_checkpoint(last)
        mixtures.forget_steps_after(ctx.db, m.id, run.pos.step)
        ctx.log(f"resumed from checkpoint {last.name} (step {run.pos.step} of {run.total_steps})")
    mixtures.set_status(ctx.db, m.id, "training")
    ctx.log(
        f"training the router of {m.name!r}: {len(enc_train)} examples, {len(enc_val)} held out, "
        f"{run.total_steps} steps of {cfg.batch_size}, top-{cfg.top_k} over {len(experts)} experts on {info['device']}"
    )
    outcome = drive(ctx, run, checkpoints, cfg, lambda rec: mixtures.record_step(ctx.db, m.id, rec), "router")
    run.save_adapter(folder / ROUTER_FOLDER)
    routing = domain_shares(
        run.model, tokenizer, [rows[i] for i in _share_sample(rows, val_idx, train_idx)], m, fmt, cfg.max_length
    )
    metrics = {
        "steps": run.pos.step,
        "final_loss": outcome.last_loss,
        "val_loss": outcome.val_loss,
        "tokens_per_s": outcome.tokens_per_s(),
        "examples": len(enc_train),
        "held_out": len(enc_val),
        "routing": routing,
        "device": info["device"],
        "four_bit": info["four_bit"],
    }
    mixtures.set_status(ctx.db, m.id, "done", metrics)
    summary = {"mixture": m.name, "router": str(folder / ROUTER_FOLDER)}
    summary.update({k: v for k, v in metrics.items() if k != "routing"})
    summary.update({f"routing {domain}": m.share_text(shares) for domain, shares in routing.items()})
    return summary


def _share_sample(rows: list[dict[str, Any]], val_idx: list[int], train_idx: list[int]) -> list[int]:
    """Up to SHARE_SAMPLE examples per expert to measure routing on: held-out ones, else training ones."""
    picked: list[int] = []
    for expert in sorted({r["expert"] for r in rows}):
        held = [i for i in val_idx if rows[i]["expert"] == expert][:SHARE_SAMPLE]
        picked += held or [i for i in train_idx if rows[i]["expert"] == expert][:SHARE_SAMPLE]
    return picked


def domain_shares(
    mixture: Any, tokenizer: Any, rows: list[dict[str, Any]], m: Mixture, fmt: str, max_length: int
) -> dict[str, list[float]]:
    """Per expert's domain (its project): the share of token routings that went to each expert."""
    from engine.backends import moe
    from engine.backends.encoding import prompt_ids

    by_domain: dict[str, list[list[int]]] = {}
    for r in rows:
        ids = prompt_ids(tokenizer, r["instruction"], r["input"], fmt)[:max_length]
        by_domain.setdefault(m.experts[r["expert"]]["project"], []).append(ids)
    return {domain: moe.shares(moe.tally_prompts(mixture, prompts)) for domain, prompts in by_domain.items()}


def descriptor(ctx: Context, name: str) -> tuple[Path, Path]:
    """Write the trained mixture's descriptor (what its scorer loads) and return it and the router file."""
    from engine.backends import moe

    m = mixtures.by_name(ctx.db, name)
    if m.status != "done":
        raise UserError(f"mixture {m.name!r} is {m.status}: train its router first (`mixture train {m.name}`)")
    kind, path, _ = models.resolve(ctx.db, m.base_model)
    router = Path(m.path) / ROUTER_FOLDER / moe.RouterRun.WEIGHTS
    body = {
        "base_format": kind,
        "base_path": str(path),
        "quantize": m.config.get("quantize", "auto"),
        "top_k": int(m.config.get("top_k", 1)),
        "router": str(router),
        "experts": [
            {"name": n, "path": paths.from_stored(e["path"])} for n, e in zip(m.expert_names(), m.experts, strict=True)
        ],
    }
    if m.metrics.get("gguf"):  # written by `mixture export`: the llama.cpp side (mix:NAME@gguf)
        body["gguf"] = m.metrics["gguf"]
    file = Path(m.path) / "mixture.json"
    partial = file.with_name(file.name + ".partial")
    partial.write_text(json.dumps(body, indent=2), encoding="utf-8")
    partial.replace(file)
    return file, router


def load_mixture(ctx: Context, m: Mixture, device: str = "auto") -> tuple[Any, Any]:
    """The trained mixture ready to answer (transformers, token-level routing) and its tokenizer."""
    from engine.backends import moe
    from engine.backends.base_load import load_base

    if m.status != "done":
        raise UserError(f"mixture {m.name!r} is {m.status}: train its router first (`mixture train {m.name}`)")
    kind, path, _ = models.resolve(ctx.db, m.base_model)
    model, tokenizer, _ = load_base(kind, path, device, "auto" if device != "cpu" else "none")
    mixture = moe.build_mixture(model.eval(), load_experts(m), int(m.config.get("top_k", 1)))
    moe.load_router(mixture, Path(m.path) / ROUTER_FOLDER / moe.RouterRun.WEIGHTS)
    return mixture.eval(), tokenizer


def ask(ctx: Context, name: str, question: str, routing: str, max_tokens: int, seed: int = 0) -> dict[str, Any]:
    """One greedy answer with token-level routing, and which experts the question's tokens went to."""
    from engine.backends import moe
    from engine.backends.encoding import prompt_ids
    from engine.spec.prompts import ALPACA_STOP, cut_at_stop

    m = mixtures.by_name(ctx.db, name)
    mixture, tokenizer = load_mixture(ctx, m)
    fmt = m.experts[0].get("prompt_format", "alpaca")
    answer, counts = moe.routed_answer(
        mixture, tokenizer, prompt_ids(tokenizer, question, "", fmt), max_tokens, routing, seed
    )
    answer, _ = cut_at_stop(answer, ALPACA_STOP)
    shares = moe.shares(counts)
    top = max(range(len(shares)), key=lambda i: shares[i])
    return {
        "mixture": m.name,
        "routing": routing,
        "answer": answer.strip(),
        "prompt_routing": m.share_text(shares),
        "preferred_expert": m.expert_names()[top],
    }
