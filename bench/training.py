"""Training throughput: our LoRA loop vs a plain Hugging Face Trainer + PEFT baseline.

Same model, same LoRA config, same examples, same optimizer settings and schedule, same number
of optimizer steps, in one process. The baseline is what most tools do: random batches padded to
their longest example (DataCollatorForSeq2Seq), no grouping or packing. Throughput counts real
(non-padding) tokens per second. Loss curves are printed side by side.

Data: PubMedQA's labelled dev set from ../shared (question + first context -> long answer), which
the product never needs. Model: the embedded default (SmolLM2-135M GGUF, dequantized) or --hf DIR.

    python bench/training.py [--steps 6] [--micro 4] [--accum 2] [--max-length 256] [--hf DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"


def load_examples(limit: int) -> list:
    from engine.backends.trainer import TrainExample

    items = json.loads(DATA.read_text())
    out = []
    for item in list(items.values())[:limit]:
        context = " ".join(item["CONTEXTS"][:2])
        out.append(TrainExample(item["QUESTION"], context, item.get("LONG_ANSWER", item.get("final_decision", ""))))
    return out


def fresh_model(args):
    from engine.backends import trainer
    from engine.stages.models import DEFAULT_MODEL, builtin_path

    if args.hf:
        return trainer.load_base("hf", Path(args.hf), args.device, "none")
    return trainer.load_base("gguf", builtin_path(DEFAULT_MODEL), args.device, "none")


def ours(args, cfg, examples) -> tuple[float, list[float], int, int]:
    from engine.backends import trainer

    model, tok, info = fresh_model(args)
    enc, _ = trainer.encode(tok, examples, "alpaca", args.max_length)
    run = trainer.LoraRun(model, tok, cfg, enc, [], info, args.threads)
    real = padded = 0
    losses = []
    start = time.perf_counter()
    for _ in range(args.steps):
        order = run._epoch_order(run.pos.epoch)
        first = run.pos.step_in_epoch * cfg.accumulation
        for batch in order[first : first + cfg.accumulation]:
            lens = [len(enc[i].input_ids) for i in batch]
            real += sum(lens)
            padded += max(lens) * len(lens)
        losses.append(run.step()["loss"])
    return time.perf_counter() - start, losses, real, padded


def baseline(args, cfg, examples) -> tuple[float, list[float], int, int]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from engine.backends import trainer

    model, tok, info = fresh_model(args)
    enc, _ = trainer.encode(tok, examples, "alpaca", args.max_length)
    rows = [{"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e.input_ids)} for e in enc]
    model.config.use_cache = False
    lora = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    collate = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
    counts = {"real": 0, "padded": 0}

    def counting(features):
        lens = [len(f["input_ids"]) for f in features]
        counts["real"] += sum(lens)
        counts["padded"] += max(lens) * len(lens)
        return collate(features)

    losses: list[float] = []

    class Log(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    targs = TrainingArguments(
        output_dir=str(Path(args.tmp) / "hf-trainer"),
        per_device_train_batch_size=cfg.micro_batch,
        gradient_accumulation_steps=cfg.accumulation,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.schedule,
        warmup_steps=int(cfg.warmup_ratio * args.steps),  # as our loop computes it
        max_steps=args.steps,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=args.device == "cpu",
        bf16=args.device == "cuda",
        seed=cfg.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    torch.set_num_threads(args.threads)
    hf = Trainer(model=model, args=targs, train_dataset=rows, data_collator=counting, callbacks=[Log()])
    start = time.perf_counter()
    hf.train()
    return time.perf_counter() - start, losses, counts["real"], counts["padded"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: free cores)")
    ap.add_argument("--hf", help="a Hugging Face model folder instead of the embedded default")
    args = ap.parse_args()
    import tempfile

    from engine.cpu import free_cores
    from engine.spec.train import TrainConfig

    args.threads = args.threads or free_cores()
    args.tmp = tempfile.mkdtemp(prefix="selfspec-bench-train-")
    cfg = TrainConfig(
        batch_size=args.micro * args.accum, micro_batch=args.micro, warmup_ratio=0.2, seed=0, max_steps=args.steps
    )
    examples = load_examples(args.examples)
    print(
        f"{len(examples)} PubMedQA examples, {args.steps} steps of {cfg.batch_size} ({args.micro} x {args.accum}),"
        f" max length {args.max_length}, {args.device}, {args.threads} threads"
    )
    b_time, b_loss, b_real, b_pad = baseline(args, cfg, examples)
    o_time, o_loss, o_real, o_pad = ours(args, cfg, examples)
    b_rate, o_rate = b_real / b_time, o_real / o_time
    print(f"\n{'step':>4} {'baseline loss':>14} {'ours loss':>10}")
    for i in range(max(len(b_loss), len(o_loss))):
        bl = f"{b_loss[i]:.4f}" if i < len(b_loss) else ""
        ol = f"{o_loss[i]:.4f}" if i < len(o_loss) else ""
        print(f"{i + 1:>4} {bl:>14} {ol:>10}")
    print(f"\n{'':22}{'baseline (HF Trainer)':>22}{'ours':>12}")
    print(f"{'real tokens':22}{b_real:>22,}{o_real:>12,}")
    print(f"{'padding computed':22}{1 - b_real / b_pad:>21.1%} {1 - o_real / o_pad:>11.1%}")
    print(f"{'seconds':22}{b_time:>22.1f}{o_time:>12.1f}")
    print(f"{'real tokens/s':22}{b_rate:>22.1f}{o_rate:>12.1f}")
    tail = max(1, len(o_loss) // 3)
    print(
        f"{'mean loss, last third':22}{statistics.mean(b_loss[-tail:]):>22.4f}{statistics.mean(o_loss[-tail:]):>12.4f}"
    )
    print(f"\nthroughput ratio (ours / baseline): {o_rate / b_rate:.2f}x")


if __name__ == "__main__":
    main()
