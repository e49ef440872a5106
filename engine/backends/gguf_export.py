"""Merge an adapter into its full-precision base, convert with llama.cpp, quantize, check parity."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.backends.runtimes.llamacpp import c_stderr_to_log, greedy_answer, load_llama
from engine.errors import Interrupted, UserError

QUANTS = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def _swap_in(partial: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True) if final.is_dir() else final.unlink(missing_ok=True)
    partial.rename(final)


def save_hf(model: Any, tokenizer: Any, out: Path) -> None:
    """A Hugging Face folder (weights, config, tokenizer, chat template), written aside then renamed."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    _swap_in(partial, out)


def merge(kind: str, base_path: Path, adapter_dir: Path, out: Path) -> None:
    """Load the base in full precision (never 4-bit), apply the adapter, fold it in, save."""
    import torch
    from peft import PeftModel

    from engine.backends.trainer import load_base

    model, tokenizer, _ = load_base(kind, base_path, "cpu", "none")
    if next(model.parameters()).dtype != torch.float32:
        model = model.float()
    try:
        merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"cannot apply the adapter at {adapter_dir}: {str(exc).splitlines()[0][:300]}") from exc
    save_hf(merged, tokenizer, out)


def save_base(kind: str, base_path: Path, out: Path) -> None:
    from engine.backends.trainer import load_base

    model, tokenizer, _ = load_base(kind, base_path, "cpu", "none")
    save_hf(model, tokenizer, out)


def _explain(log: str, what: str) -> str:
    text = log.lower()
    if "pre-tokenizer was not recognized" in text or "bpe pre-tokenizer" in text:
        return (
            f"{what}: llama.cpp does not know this tokenizer's pre-processing (its fingerprint is not in the "
            "converter's list), so a GGUF would tokenize text differently; this model cannot be exported with "
            "the installed llama.cpp"
        )
    if "not supported" in text and "model" in text:
        line = next((ln for ln in log.splitlines() if "not supported" in ln.lower()), "")
        return f"{what}: llama.cpp cannot convert this architecture ({line.strip()[:200]})"
    tail = " | ".join(ln.strip() for ln in log.strip().splitlines()[-3:])
    return f"{what} failed: {tail[:600]}"


def convert(
    script: Path, args: Sequence[str], out: Path, what: str, should_stop: Callable[[], bool], threads: int
) -> None:
    """Run one of llama.cpp's converters into `out` (via a .partial file); SIGTERM it on cancel."""
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    cmd = [sys.executable, str(script), *args, "--outfile", str(partial)]
    env = {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    # output to a file, not a pipe: a converter that prints more than a pipe holds would block
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out_log:
        proc = subprocess.Popen(cmd, stdout=out_log, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            while proc.poll() is None:
                if should_stop():
                    raise Interrupted()
                time.sleep(0.2)
        finally:
            if proc.poll() is None:  # cancelled, or interrupted hard: the converter goes too
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                partial.unlink(missing_ok=True)
        out_log.seek(0)
        log = out_log.read()
    if proc.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise UserError(_explain(log, what))
    partial.rename(out)


def quantize(source: Path, out: Path, quant: str, threads: int) -> None:
    import llama_cpp

    name = QUANTS.get(quant)
    if name is None:
        raise UserError(f"unknown quantization {quant!r} (one of: {', '.join(QUANTS)})")
    partial = out.with_name(out.name + ".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = threads
    with c_stderr_to_log():
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if rc != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise UserError(f"quantizing {source.name} to {quant} failed (llama.cpp returned {rc})")
    partial.rename(out)


def open_gguf(path: Path, threads: int, n_ctx: int = 2048, logits_all: bool = False) -> Any:
    """llama.cpp on a GGUF file; a corrupt or truncated file is a clear error, not a crash."""
    return load_llama(path, threads, n_ctx, logits_all=logits_all)


def parity(
    hf_dir: Path,
    ggufs: dict[str, Path],
    texts: Sequence[str],
    threads: int,
    tick: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tokenization equality (HF tokenizer vs GGUF vocabulary) and greedy top-1 agreement per position.
    `tick(model)` runs after each text scored (the merged model is "reference"); it may raise to stop."""
    tick = tick or (lambda name: None)
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    torch.set_num_threads(max(1, threads))
    encoded = [tok(t)["input_ids"][:1024] for t in texts]
    reference = []
    with torch.no_grad():
        for ids in encoded:
            reference.append(model(torch.tensor([ids])).logits[0].argmax(-1).numpy())
            tick("reference")
    out: dict[str, Any] = {"texts": len(texts), "positions": sum(len(i) for i in encoded)}
    for name, path in ggufs.items():
        llm = open_gguf(path, threads, n_ctx=max(64, max(len(i) for i in encoded) + 8), logits_all=True)
        try:
            same_tokens = agree = total = 0
            first_diff = None
            for text, ids, ref in zip(texts, encoded, reference):
                has_bos = bool(ids) and tok.bos_token_id is not None and ids[0] == tok.bos_token_id
                theirs = llm.tokenize(text.encode("utf-8"), add_bos=has_bos, special=True)[:1024]
                if theirs == ids:
                    same_tokens += 1
                elif first_diff is None:
                    first_diff = text[:80]
                llm.reset()
                llm.eval(ids)
                scores = np.asarray(llm.scores[: len(ids)])
                agree += int((scores.argmax(-1) == ref).sum())
                total += len(ids)
                tick(name)
        finally:
            llm.close()
        out[name] = {
            "tokenization_equal": same_tokens / max(1, len(texts)),
            "top1_agreement": agree / max(1, total),
            **({"first_token_mismatch": first_diff} if first_diff else {}),
        }
    return out


def answer(
    path: Path, question: str, prompt_format: str, threads: int, max_tokens: int = 96, lora: Path | None = None
) -> str:
    """One greedy answer from a GGUF model, in the prompt format it was tuned with."""
    return greedy_answer(path, question, prompt_format, threads, max_tokens, lora)
