"""The `mixture` commands (Self-MoE), declared like every other command (engine.spec.commands)."""

from __future__ import annotations

from engine.spec import events as ev
from engine.spec import mixture
from engine.spec.stage import Command, opt

_C = "engine.commands."

MIXTURE_COMMANDS: tuple[Command, ...] = (
    Command(
        "mixture create",
        _C + "mixture:create",
        "name a mixture of finished experts on one base model",
        options=(
            opt("name"),
            opt("--expert", action="append", required=True, metavar="PROJECT[/ADAPTER]", help="an expert (repeat)"),
        ),
    ),
    Command(
        "mixture train",
        _C + "mixture:train",
        "train the mixture's router on the experts' own data (resumable)",
        description="Only the router trains; base and experts stay frozen. An unfinished router resumes from"
        " its newest checkpoint.",
        records_run=True,
        config=mixture.RouterConfig,
        knobs=mixture.knobs(),
        resume="refuse-changes",
        events=(ev.Progress, ev.Log),
        options=(opt("name"),),
    ),
    Command("mixture list", _C + "mixture:list_", "mixtures with their experts, status and routing"),
    Command(
        "mixture delete",
        _C + "mixture:delete",
        "delete a mixture: its router and exports (its experts and their projects stay)",
        options=(opt("name"), opt("--yes", action="store_true", help="confirm")),
    ),
    Command(
        "mixture chat",
        _C + "mixture:chat",
        "ask a trained mixture one question (transformers, routing per token)",
        options=(
            opt("name"),
            opt("-q", "--question", required=True, help="the question"),
            opt("--routing", default="router", choices=("router", "random", "uniform"), help="how tokens are routed"),
            opt("--max-tokens", type=int, default=128, help="longest answer in tokens"),
            opt("--gguf", action="store_true", help="answer on llama.cpp with the prompt's preferred expert"),
        ),
    ),
    Command(
        "mixture export",
        _C + "mixture:export",
        "the base as GGUF and each expert as a LoRA GGUF, for llama.cpp (resumable)",
        records_run=True,
        events=(ev.Progress, ev.Log),
        options=(opt("name"),),
    ),
    Command(
        "mixture eval",
        _C + "mixture:eval",
        "base, each expert alone and the mixture (per token, per prompt) on every domain and off-domain",
        records_run=True,
        events=(ev.Progress, ev.Log, ev.Result),
        options=(
            opt("name"),
            opt("--limit", type=int, help="at most this many items per set (a seeded sample)"),
            opt("--shots", type=int, default=0, help="few-shot demonstrations per item"),
            opt("--max-tokens", type=int, default=128, help="longest free-form answer"),
            opt("--new", action="store_true", help="score again instead of reusing or resuming"),
        ),
    ),
)
