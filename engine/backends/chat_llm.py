"""Streaming chat replies from GGUF models with llama.cpp."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import UserError

ALPACA_STOP = ["### Instruction", "### Input", "\n### "]


def load(path: Path, lora: Path | None, threads: int, n_ctx: int = 4096) -> Any:
    import llama_cpp

    from engine.backends.gguf_export import c_stderr_to_log
    from engine.backends.gguf_meta import read_gguf_metadata

    read_gguf_metadata(path)
    try:
        with c_stderr_to_log():
            return llama_cpp.Llama(
                str(path),
                lora_path=str(lora) if lora else None,
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: llama.cpp cannot load it: {exc}") from exc


def alpaca_conversation(system: str, turns: list[dict[str, Any]]) -> str:
    """A conversation in the Alpaca blocks an alpaca-format expert was tuned on."""
    from engine.backends.trainer import alpaca_prompt

    text = f"{system.strip()}\n\n" if system.strip() else ""
    for t in turns:
        if t["role"] == "user":
            text += alpaca_prompt(t["content"], "")
        else:
            text += t["content"].strip() + "\n\n"
    return text


def stream(
    llm: Any,
    prompt_format: str,
    system: str,
    turns: list[dict[str, Any]],
    sampling: dict[str, Any],
    stop: list[str],
    should_stop: Callable[[], bool],
) -> Iterator[str]:
    """Text pieces of the reply as they are generated; stops early when should_stop() turns true."""
    common = {
        "temperature": float(sampling.get("temperature", 0.7)),
        "top_p": float(sampling.get("top_p", 0.95)),
        "max_tokens": int(sampling.get("max_tokens", 256)),
        "stream": True,
    }
    if prompt_format == "alpaca":
        pieces = llm.create_completion(alpaca_conversation(system, turns), stop=[*ALPACA_STOP, *stop], **common)
        for chunk in pieces:
            if should_stop():
                return
            yield str(chunk["choices"][0].get("text") or "")
    else:
        msgs = ([{"role": "system", "content": system}] if system.strip() else []) + turns
        pieces = llm.create_chat_completion(msgs, stop=stop or None, **common)
        for chunk in pieces:
            if should_stop():
                return
            yield str(chunk["choices"][0].get("delta", {}).get("content") or "")


def count_tokens(llm: Any, text: str) -> int:
    return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
