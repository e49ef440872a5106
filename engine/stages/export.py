"""Export an expert: merged HF folder, GGUF f16 + quantizations, LoRA GGUF, Modelfile, parity.

Every artifact is written aside and renamed into place, and a step whose artifact exists is
skipped, so a cancelled or killed export resumes where it stopped. The parity check compares
the merged Hugging Face model with each GGUF on a sample of the adapter's own training data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.spec import prompts
from engine.stages import converter, models
from engine.stages.context import Context, Interrupted
from engine.stages.train import DATA_FILE
from engine.store import adapters
from engine.store.adapters import Adapter

F16 = "model-f16.gguf"
PARITY_SAMPLE = 12
F16_TOP1_GATE = 0.95


def gguf_name(quant: str) -> str:
    return f"model-{quant}.gguf"


def sample_texts(adapter: Adapter, n: int = PARITY_SAMPLE) -> list[str]:
    """Prompt + response texts from the adapter's own data, in its prompt format."""
    rows = [json.loads(x) for x in (Path(adapter.path) / DATA_FILE).read_text(encoding="utf-8").splitlines()]
    random.Random(0).shuffle(rows)
    texts = []
    for r in rows[:n]:
        texts.append(prompts.alpaca_prompt(r["instruction"], r["input"]) + r["output"].strip())
    return texts


modelfile = prompts.modelfile


def run_export(
    ctx: Context, adapter_name: str | None, quants: list[str], lora: bool, parity_check: bool
) -> dict[str, Any]:
    from engine.backends import gguf_export as gx

    project = ctx.need_project()
    adapter = adapters.by_name(ctx.db, project, adapter_name) if adapter_name else adapters.current(ctx.db, project)
    if adapter is None:
        raise UserError("no current adapter: train one first (selfspec-tui train) or pass --adapter NAME")
    if adapter.status != "done":
        raise UserError(f"adapter {adapter.name!r} is {adapter.status}: finish training it first")
    for q in quants:
        if q not in gx.QUANTS:
            raise UserError(f"unknown quantization {q!r} (one of: {', '.join(gx.QUANTS)})")
    kind, base_path, _ = models.resolve(ctx.db, adapter.base_model)
    tools = converter.find()
    out = paths.child(ctx.workdir / "exports", adapter.name, "export")
    out.mkdir(parents=True, exist_ok=True)
    record = adapters.start_export(ctx.db, adapter, str(out))
    fmt = adapter.config.get("train", {}).get("prompt_format", "alpaca")
    steps = ["merge", "f16", *quants] + (["lora"] if lora else []) + (["parity"] if parity_check else [])
    progress = ctx.progress("export", len(steps), "steps")
    files: dict[str, str] = {}
    try:
        merged = out / "merged"
        if not (merged / "config.json").exists():
            ctx.log(f"merging {adapter.name!r} into the full-precision {adapter.base_model} ...")
            gx.merge(kind, base_path, Path(adapter.path) / "adapter", merged)
        files["merged"] = str(merged)
        progress.advance(force=True)
        ctx.check_stop()
        f16 = out / F16
        if not f16.exists():
            ctx.log("converting to GGUF f16 with llama.cpp's converter ...")
            gx.convert(
                tools / "convert_hf_to_gguf.py",
                [str(merged), "--outtype", "f16"],
                f16,
                "GGUF conversion",
                ctx.should_stop,
                ctx.threads,
            )
        files["f16"] = str(f16)
        progress.advance(force=True)
        for q in quants:
            target = out / gguf_name(q)
            if not target.exists():
                ctx.log(f"quantizing to {q} ...")
                gx.quantize(f16, target, q, ctx.threads)
            files[q] = str(target)
            progress.advance(force=True)
            ctx.check_stop()
        if lora:
            lora_file = out / "adapter-f16.gguf"
            if not lora_file.exists():
                base_dir = base_path if kind == "hf" else ctx.workdir / "exports" / "base-hf"
                if kind != "hf" and not (base_dir / "config.json").exists():
                    ctx.log("saving the base as a Hugging Face folder for the LoRA converter ...")
                    gx.save_base(kind, base_path, base_dir)
                gx.convert(
                    tools / "convert_lora_to_gguf.py",
                    ["--base", str(base_dir), "--outtype", "f16", str(Path(adapter.path) / "adapter")],
                    lora_file,
                    "LoRA GGUF conversion",
                    ctx.should_stop,
                    ctx.threads,
                )
            files["lora"] = str(lora_file)
            progress.advance(force=True)
        shipped = files[quants[0]] if quants else files["f16"]
        (out / "Modelfile").write_text(modelfile(Path(shipped).name, fmt))
        files["modelfile"] = str(out / "Modelfile")
        report: dict[str, Any] = {}
        if parity_check:
            ctx.log("parity check: tokenization and greedy next-token agreement on the adapter's own data ...")
            ggufs = {"f16": out / F16, **{q: out / gguf_name(q) for q in quants}}
            texts = sample_texts(adapter)
            # its own bar: the merged model, then each GGUF, scores every text (minutes on a CPU)
            checks = ctx.progress("parity", len(texts) * (1 + len(ggufs)), "texts scored")

            def tick(model: str) -> None:
                ctx.check_stop()
                checks.extra = {"model": model}
                checks.advance()

            report = gx.parity(merged, ggufs, texts, ctx.threads, tick)
            progress.advance(force=True)
    except Interrupted:
        adapters.update_export(ctx.db, record.id, "interrupted", files)
        raise
    except BaseException:
        adapters.update_export(ctx.db, record.id, "failed", files)
        raise
    adapters.update_export(ctx.db, record.id, "done", files, report)
    summary: dict[str, Any] = {"adapter": adapter.name, "folder": str(out)}
    for key, path in files.items():
        summary[key] = Path(path).name
    summary["ollama"] = ollama_command(adapter.name, out / "Modelfile")
    for name in ("f16", *quants):
        if name in report:
            r = report[name]
            summary[f"parity_{name}"] = (
                f"tokens {r['tokenization_equal']:.0%}, top-1 {r['top1_agreement']:.1%}"
                f" of {report['positions']} positions"
            )
    if report:
        f16r = report["f16"]
        if f16r["tokenization_equal"] < 1.0 or f16r["top1_agreement"] < F16_TOP1_GATE:
            raise UserError(
                f"parity check failed for the f16 GGUF: tokenization equal on {f16r['tokenization_equal']:.0%} of "
                f"samples (need 100%), top-1 agreement {f16r['top1_agreement']:.1%} (need {F16_TOP1_GATE:.0%}); "
                f"the files are in {out} but should not be trusted"
            )
    return summary


def ollama_command(name: str, modelfile_path: Path) -> str:
    """The command that serves the export through Ollama (the Modelfile sits beside the GGUF file
    it names); it says so when Ollama is not installed here."""
    import shlex
    import shutil

    command = f"ollama create {shlex.quote(name)} -f {shlex.quote(str(modelfile_path))}"
    if shutil.which("ollama") is None:
        return f"{command}  (Ollama is not installed here)"
    return command
