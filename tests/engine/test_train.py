"""Training on a tiny local Llama: the real torch/peft path, fast enough for every CI run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.events import Event
from engine.spec.events import to_dict
from engine.stages.context import Context, Interrupted
from engine.stages.train import open_training, run_training
from engine.store import adapters, projects, review
from engine.store.review import Filter
from tests.helpers import ROOT, fill, run_engine


def context(db, project, events: list[Event] | None = None, stop_after: int | None = None) -> Context:
    ctx = Context(db, lambda e: None, project, threads=1)

    def emit(typed: Event) -> None:
        event = to_dict(typed)  # what a JSON reader of the engine sees
        if events is not None:
            events.append(event)
        if stop_after is not None and event.get("event") == "progress" and event.get("done", 0) >= stop_after:
            ctx.stop_flag.set()

    ctx.emit = emit
    return ctx


FAST = {"learning_rate": 5e-3, "batch_size": 4, "micro_batch": 2, "epochs": 3, "checkpoint_every": 2}


def losses(db, adapter_id: int) -> list[tuple[int, float, float | None]]:
    return [(s.step, s.loss, s.val_loss) for s in adapters.steps(db, adapter_id)]


def test_encode_masks_the_prompt_and_ends_with_eos(tiny_folder):
    from transformers import AutoTokenizer

    from engine.backends.trainer import IGNORE, TrainExample, alpaca_prompt, encode

    tok = AutoTokenizer.from_pretrained(tiny_folder)
    ex = TrainExample("Explain insulin.", "Type 2 diabetes", "Insulin lowers glucose.")
    for fmt in ("alpaca", "chat"):
        [enc], cut = encode(tok, [ex], fmt, 512)
        assert cut == 0 and len(enc.input_ids) == len(enc.labels)
        first = next(i for i, x in enumerate(enc.labels) if x != IGNORE)
        assert all(x == IGNORE for x in enc.labels[:first]) and enc.labels[first:] == enc.input_ids[first:]
        assert enc.input_ids[-1] == tok.eos_token_id
        response = tok.decode(enc.input_ids[first:], skip_special_tokens=True)
        assert response.strip() == "Insulin lowers glucose."
        prompt = tok.decode(enc.input_ids[:first], skip_special_tokens=False)
        assert ("### Response:" in prompt) if fmt == "alpaca" else ("<|assistant|>" in prompt)
    assert alpaca_prompt("Q", "") == "### Instruction:\nQ\n\n### Response:\n"
    [short], _ = encode(tok, [TrainExample("a", "", "Insulin lowers glucose. " * 10)], "alpaca", 24)
    assert len(short.input_ids) == 24 and short.input_ids[-1] != tok.eos_token_id  # cut at the end
    none, cut = encode(tok, [TrainExample("word " * 50, "", "x")], "alpaca", 10)
    assert none == [] and cut == 1


def test_batches_are_deterministic_grouped_and_cover_every_example():
    from engine.backends.trainer import epoch_batches

    lengths = [((i * 37) % 101) + 1 for i in range(300)]
    a = epoch_batches(lengths, 4, seed=1, epoch=0)
    assert a == epoch_batches(lengths, 4, seed=1, epoch=0) and a != epoch_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(300))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in a)
    assert padded < 1.1 * sum(lengths)  # grouping by length leaves little padding


def test_loss_goes_down_and_only_lora_weights_change(db, tiny_project, tiny_folder):
    from safetensors.torch import load_file

    base_hash = hashlib.sha256((tiny_folder / "model.safetensors").read_bytes()).hexdigest()
    events: list[Event] = []
    ctx = context(db, tiny_project, events)
    adapter = open_training(ctx, {**FAST, "epochs": 6, "val_fraction": 0.1}, None, None, False)
    summary = run_training(ctx, adapter)
    steps = losses(db, adapter.id)
    assert len(steps) == summary["steps"] == 6 * 5  # 18 train examples / 2 per micro-batch / 2 accumulated
    first, last = sum(s[1] for s in steps[:5]) / 5, sum(s[1] for s in steps[-5:]) / 5
    assert last < first - 0.5, (first, last)
    vals = [v for _, _, v in steps if v is not None]
    assert len(vals) == 6 and vals[-1] < vals[0]
    saved = load_file(str(Path(summary["path"]) / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    assert hashlib.sha256((tiny_folder / "model.safetensors").read_bytes()).hexdigest() == base_hash
    cfg = json.loads((Path(summary["path"]) / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 16
    suffixes = {m.rsplit(".", 1)[-1] for m in cfg["target_modules"]}
    assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    progress = [e for e in events if e.get("event") == "progress" and e.get("done")]
    assert all({"loss", "lr", "tokens_per_s", "eta_s", "elapsed_s"} <= set(e) for e in progress)
    a = adapters.get(db, adapter.id)
    assert a.status == "done" and a.is_current and a.metrics["val_loss"] == pytest.approx(vals[-1])
    assert a.examples == 20 and len(a.fingerprint) == 64


def test_base_weights_stay_frozen_in_memory(db, tiny_project):
    import torch

    from engine.backends import trainer
    from engine.spec.train import TrainConfig

    cfg = TrainConfig(**{k: v for k, v in FAST.items() if k != "checkpoint_every"})
    from engine.stages import models

    kind, path, _ = models.resolve(db, "tiny")
    model, tok, info = trainer.load_base(kind, path, "cpu", "none")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    enc, _ = trainer.encode(tok, [trainer.TrainExample("a b c d", "", "insulin")] * 8, "alpaca", 64)
    run = trainer.LoraRun(model, tok, cfg, enc, [], info, 1)
    for _ in range(3):
        run.step()
    changed = {
        n.replace("base_model.model.", "").replace(".base_layer", "")
        for n, p in run.model.named_parameters()
        if "lora_" not in n
        and not torch.equal(p, before[n.replace("base_model.model.", "").replace(".base_layer", "")])
    }
    assert changed == set()
    lora_b = [p for n, p in run.model.named_parameters() if "lora_B" in n]
    assert any(float(p.abs().sum()) > 0 for p in lora_b)  # B starts at zero: it moved


def test_a_trainable_tensor_without_gradient_fails_loudly(db, tiny_project):
    import torch

    from engine.backends import trainer
    from engine.spec.train import TrainConfig
    from engine.stages import models

    kind, path, _ = models.resolve(db, "tiny")
    model, tok, info = trainer.load_base(kind, path, "cpu", "none")
    enc, _ = trainer.encode(tok, [trainer.TrainExample("a b c", "", "insulin")] * 4, "alpaca", 64)
    run = trainer.LoraRun(model, tok, TrainConfig(batch_size=2, micro_batch=2), enc, [], info, 1)
    orphan = torch.nn.Parameter(torch.zeros(3))  # trainable, but not part of the forward pass
    run.trainable.append(("orphan", orphan))
    with pytest.raises(RuntimeError, match="got no gradient"):
        run.step()


def test_cancel_then_resume_gives_the_same_losses(db, tiny_project, home):
    ctx = context(db, tiny_project)
    straight = open_training(ctx, FAST, "straight", None, False)
    run_training(ctx, straight)
    want = losses(db, straight.id)
    ctx = context(db, tiny_project, stop_after=5)  # stops after step 5 (not a checkpoint step)
    again = open_training(ctx, FAST, "again", None, True)
    with pytest.raises(Interrupted):
        run_training(ctx, again)
    assert adapters.get(db, again.id).status == "interrupted"
    ckpts = sorted(p.name for p in (Path(again.path) / "checkpoints").iterdir())
    assert ckpts[-1] == "step-0000005" and len(ckpts) <= 2
    ctx = context(db, tiny_project)
    resumed = open_training(ctx, {}, None, None, False)
    assert resumed.id == again.id
    run_training(ctx, resumed)
    assert losses(db, again.id) == want  # bit-identical, validation losses included


def test_kill_9_mid_training_then_resume_equals_uninterrupted(db, tiny_project, home):
    args = [
        "train",
        "--project",
        "tp",
        "--lr",
        "5e-3",
        "--batch-size",
        "2",
        "--micro-batch",
        "1",
        "--epochs",
        "4",
        "--checkpoint-every",
        "3",
    ]
    assert run_engine(*args, "--name", "straight").returncode == 0
    want = losses(db, adapters.by_name(db, tiny_project, "straight").id)
    env = {**os.environ}
    cmd = [sys.executable, "-m", "engine", "--format", "text", *args, "--name", "killed", "--new"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    con = sqlite3.connect(home / "selfspec.db")
    deadline = time.monotonic() + 120
    while True:
        row = con.execute(
            "SELECT count(*) FROM train_steps s JOIN adapters a ON a.id = s.adapter_id WHERE a.name = 'killed'"
        ).fetchone()
        if row[0] >= 20:
            break
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = adapters.by_name(db, tiny_project, "killed")
    assert killed.status == "training" and len(losses(db, killed.id)) < len(want)
    r = run_engine("train", "--project", "tp")
    assert r.returncode == 0, r.stderr
    assert "resumed from checkpoint" in r.stderr
    assert losses(db, killed.id) == want


def test_sigterm_writes_a_checkpoint_and_exits_130(db, tiny_project, home):
    cmd = [
        sys.executable,
        "-m",
        "engine",
        "--format",
        "text",
        "train",
        "--project",
        "tp",
        "--batch-size",
        "2",
        "--micro-batch",
        "1",
        "--epochs",
        "20",
        "--checkpoint-every",
        "1000",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    con = sqlite3.connect(home / "selfspec.db")
    deadline = time.monotonic() + 120
    while con.execute("SELECT count(*) FROM train_steps").fetchone()[0] < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "checkpoint" in err
    a = adapters.list_for(db, tiny_project)[-1]
    assert a.status == "interrupted" and any((Path(a.path) / "checkpoints").glob("step-*"))


def test_errors_are_clear(db, tiny_project, tiny_folder, tmp_path):
    empty = projects.create(db, "empty", "biomedicine", "tiny", {})
    fill(db, empty, 3)
    with pytest.raises(UserError, match="training set is empty"):
        open_training(context(db, empty), {}, None, None, False)
    with pytest.raises(UserError, match="not a multiple of micro-batch"):
        open_training(context(db, tiny_project), {"batch_size": 6, "micro_batch": 4}, None, None, False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        run_training(
            context(db, tiny_project), open_training(context(db, tiny_project), {"device": "cuda"}, "gpu", None, False)
        )
    with pytest.raises(UserError, match="other settings.*learning_rate|other settings"):
        open_training(context(db, tiny_project), {"learning_rate": 0.1}, None, None, False)
    r = run_engine("train", "--project", "tp", "--lr", "-1", "--new")
    assert r.returncode == 2 and "--lr" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    from engine.stages.models import register

    register(db, broken, "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")  # broken after it was registered
    bp = projects.create(db, "bp", "biomedicine", "broken", {})
    ids = fill(db, bp, 4)
    review.set_status(db, bp, Filter(ids=tuple(ids)), "accepted", "x")
    r = run_engine("train", "--project", "bp")
    assert r.returncode == 2 and "cannot load the base model" in r.stderr and "Traceback" not in r.stderr
    r = run_engine("adapters", "use", "nope", "--project", "tp")
    assert r.returncode == 2 and "no adapter named 'nope'" in r.stderr


def test_several_adapters_and_choosing_the_current_one(db, tiny_project):
    small = {**FAST, "epochs": 1}
    for name in ("first", "second"):
        run_training(context(db, tiny_project), open_training(context(db, tiny_project), small, name, None, True))
    assert adapters.current(db, tiny_project).name == "first"
    r = run_engine("adapters", "use", "second", "--project", "tp")
    assert r.returncode == 0 and adapters.current(db, tiny_project).name == "second"
    r = run_engine("adapters", "list", "--project", "tp")
    assert "* second" in r.stdout and "first" in r.stdout
    # the chat-template prompt format trains too, and is recorded with the adapter
    chat = open_training(context(db, tiny_project), {**small, "prompt_format": "chat"}, "chatty", None, True)
    out = run_training(context(db, tiny_project), chat)
    meta = json.loads((Path(out["path"]).parent / "selfspec.json").read_text())
    assert meta["prompt_format"] == "chat" and meta["fingerprint"] == chat.fingerprint


@pytest.mark.gpu
def test_qlora_on_cuda_4bit_with_gradients(db, tiny_project):
    import torch

    assert torch.cuda.is_available()
    out = run_training(
        context(db, tiny_project),
        open_training(context(db, tiny_project), {**FAST, "device": "cuda"}, "qlora", None, True),
    )
    a = adapters.by_name(db, tiny_project, "qlora")
    assert a.metrics["four_bit"] and a.metrics["device"] == "cuda" and a.metrics["peak_memory_mb"] > 0
    steps = losses(db, a.id)
    assert steps[-1][1] < steps[0][1] and out["tokens_per_s"]


def test_out_of_memory_says_what_to_lower(db, tiny_project, monkeypatch):
    from engine.backends import trainer

    def oom(self, items):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1234 bytes")

    real_loss_sum = trainer.LoraRun._loss_sum
    monkeypatch.setattr(trainer.LoraRun, "_loss_sum", oom)
    ctx = context(db, tiny_project)
    adapter = open_training(ctx, FAST, "oom", None, False)
    with pytest.raises(UserError, match=r"out of memory at micro-batch 2, max length 1024: lower --micro-batch"):
        run_training(ctx, adapter)
    assert adapters.get(db, adapter.id).status == "failed"
    monkeypatch.setattr(trainer.LoraRun, "_loss_sum", real_loss_sum)  # (undo() would also drop SELFSPEC_HOME)
    out = run_training(context(db, tiny_project), open_training(context(db, tiny_project), {}, None, None, False))
    assert out["adapter"] == "oom"  # a failed run resumes like an interrupted one
