"""A mixture for llama.cpp: the base as GGUF plus each expert as a LoRA GGUF, and answers that pick
one expert per prompt (the sequence-level approximation of per-token routing).

`export_mixture` writes the files (each one aside, then renamed; an existing file is skipped, so a
cancelled or killed export resumes). `ask_gguf` asks the router which expert the prompt's tokens
prefer (one transformers forward over the prompt), then answers with llama.cpp, switching LoRA
adapters on the one loaded base rather than reloading it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.stages import converter, models
from engine.stages.context import Context
from engine.stages.mixture import descriptor
from engine.store import mixtures

BASE_F16 = "base-f16.gguf"


def expert_file(folder: Path, index: int, name: str) -> Path:
    return folder / "gguf" / f"expert-{index}-{re.sub(r'[^A-Za-z0-9._-]', '-', name)}.gguf"


def export_mixture(ctx: Context, name: str) -> dict[str, Any]:
    from engine.backends import gguf_export as gx

    m = mixtures.by_name(ctx.db, name)
    descriptor(ctx, name)  # refuses an untrained mixture
    kind, base_path, _ = models.resolve(ctx.db, m.base_model)
    tools = converter.find()
    folder = Path(m.path)
    (folder / "gguf").mkdir(parents=True, exist_ok=True)
    progress = ctx.progress("export", len(m.experts) + 1, "files")
    base_hf = base_path if kind == "hf" else folder / "base-hf"
    if kind != "hf" and not (base_hf / "config.json").exists():
        ctx.log("saving the base as a Hugging Face folder for the LoRA converter ...")
        gx.save_base(kind, base_path, base_hf)
    base_gguf = base_path if kind == "gguf" else folder / "gguf" / BASE_F16
    if not base_gguf.exists():
        ctx.log("converting the base to GGUF f16 ...")
        gx.convert(
            tools / "convert_hf_to_gguf.py",
            [str(base_hf), "--outtype", "f16"],
            base_gguf,
            "GGUF conversion",
            ctx.should_stop,
            ctx.threads,
        )
    progress.advance(force=True)
    files = []
    for i, (expert, entry) in enumerate(zip(m.expert_names(), m.experts, strict=True)):
        ctx.check_stop()
        target = expert_file(folder, i, expert)
        if not target.exists():
            ctx.log(f"converting {expert} to a LoRA GGUF ...")
            gx.convert(
                tools / "convert_lora_to_gguf.py",
                ["--base", str(base_hf), "--outtype", "f16", paths.from_stored(entry["path"])],
                target,
                "LoRA GGUF conversion",
                ctx.should_stop,
                ctx.threads,
            )
        files.append(str(target))
        progress.advance(force=True)
    gguf = {"base": str(base_gguf), "experts": files}
    mixtures.update_metrics(ctx.db, m.id, {"gguf": gguf})
    return {
        "mixture": name,
        "base": str(base_gguf),
        **{f"expert {n}": f for n, f in zip(m.expert_names(), files, strict=True)},
    }


def ask_gguf(ctx: Context, name: str, question: str, max_tokens: int) -> dict[str, Any]:
    """Route the question to one expert (the router's preference over its tokens), answer on llama.cpp."""
    from engine.backends import moe
    from engine.backends.encoding import prompt_ids
    from engine.backends.runtimes.llamacpp import SwitchingLlama
    from engine.stages.mixture import load_mixture

    m = mixtures.by_name(ctx.db, name)
    gguf = m.metrics.get("gguf")
    if not gguf or not all(Path(f).is_file() for f in [gguf["base"], *gguf["experts"]]):
        raise UserError(f"mixture {name!r} has no GGUF files yet: run `mixture export {name}` first")
    fmt = m.experts[0].get("prompt_format", "alpaca")
    mixture, tokenizer = load_mixture(ctx, m, "cpu")
    counts = moe.tally_prompts(mixture, [prompt_ids(tokenizer, question, "", fmt)])
    del mixture
    shares = moe.shares(counts)
    pick = max(range(len(shares)), key=lambda i: shares[i])
    llm = SwitchingLlama(Path(gguf["base"]), [Path(f) for f in gguf["experts"]], ctx.threads)
    try:
        llm.use(pick)
        answer = llm.answer(question, fmt, max_tokens)
    finally:
        llm.close()
    return {
        "mixture": name,
        "routing": "per prompt (llama.cpp)",
        "answered_by": m.expert_names()[pick],
        "answer": answer,
        "prompt_routing": m.share_text(shares),
    }


class MixedChat:
    """A mixture in the chat: llama.cpp holds the base and every expert's LoRA GGUF; each message goes
    to the expert the router prefers for the message's tokens (`route`), switched in on the base."""

    def __init__(self, ctx: Context, name: str) -> None:
        from engine.backends.runtimes.llamacpp import SwitchingLlama
        from engine.stages.mixture import load_mixture

        self.mixture = mixtures.by_name(ctx.db, name)
        gguf = self.mixture.metrics.get("gguf")
        if not gguf:
            raise UserError(f"mixture {name!r} has no GGUF files yet: run `mixture export {name}` first")
        self.format = self.mixture.experts[0].get("prompt_format", "alpaca")
        self.router, self.tokenizer = load_mixture(ctx, self.mixture, "cpu")
        self.switching = SwitchingLlama(Path(gguf["base"]), [Path(f) for f in gguf["experts"]], ctx.threads)
        self.llm = self.switching.llm

    def route(self, text: str) -> str:
        """Switch to the expert the router prefers for `text`; its name (PROJECT/ADAPTER)."""
        from engine.backends import moe
        from engine.backends.encoding import prompt_ids

        counts = moe.tally_prompts(self.router, [prompt_ids(self.tokenizer, text, "", self.format)])
        pick = max(range(len(counts)), key=lambda i: counts[i])
        self.switching.use(pick)
        return self.mixture.expert_names()[pick]

    def close(self) -> None:
        self.switching.close()
        del self.router


def chat_choices(ctx: Context, project_name: str) -> list[tuple[str, str, Path, str]]:
    """(spec, label, base GGUF, prompt format) of every exported mixture with an expert of this project."""
    out = []
    for m in mixtures.list_all(ctx.db):
        gguf = m.metrics.get("gguf")
        if m.status != "done" or not gguf or project_name not in {e["project"] for e in m.experts}:
            continue
        if not all(Path(f).is_file() for f in [gguf["base"], *gguf["experts"]]):
            continue
        label = f"mixture {m.name} ({', '.join(m.expert_names())})"
        out.append((f"mix:{m.name}", label, Path(gguf["base"]), m.experts[0].get("prompt_format", "alpaca")))
    return out
