"""chat: a terminal REPL, the model/conversation list, or the TUI's serve loop."""

from __future__ import annotations

from argparse import Namespace

from engine.spec.commands import stage
from engine.spec.stage import given
from engine.stages.context import Context


def run(ctx: Context, a: Namespace) -> None:
    from engine.stages import chat
    from engine.store import chats

    project = ctx.need_project()
    if a.serve:
        chat.serve(ctx)
        return
    if a.list:
        rows = [
            [c.spec, c.label, c.path.name + (f" + {c.lora.name}" if c.lora else ""), c.prompt_format]
            for c in chat.available(ctx, project)
        ]
        ctx.table(
            ["model", "what", "file", "prompt"],
            rows,
            "no GGUF model to chat with (export an expert: selfspec-tui export)",
        )
        convs = [[c.id, ", ".join(c.models), c.title, c.updated_at] for c in chats.list_for(ctx.db, project)]
        ctx.table(["conversation", "models", "first message", "updated"], convs, "no conversations yet")
        return
    sampling = chat.check_sampling(given(stage("chat").knobs, a))
    chat.repl(ctx, a.model or ["base"], a.system or "", sampling, a.conversation, a.question, a.grounded)
