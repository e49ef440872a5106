"""`python -m engine`: the headless CLI, built from the command declarations in engine.spec.commands.

The same commands back the TUI (with --format json)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from engine import render, runner
from engine.events import json_sink
from engine.spec import events as ev
from engine.spec.commands import BY_NAME, COMMANDS, GROUPS
from engine.spec.stage import PROJECT, Command, Knob


def knob_help(k: Knob) -> str:
    """A knob's help on the command line: its description and the default the config holds."""
    shown = k.default_text()
    return f"{k.help} (default {shown})" if shown else k.help


def _add_knob(p: argparse.ArgumentParser, k: Knob) -> None:
    if k.kind is bool:  # a switch: the flag turns the default around
        flag = f"--no-{k.name.replace('_', '-')}" if k.default else k.flag
        state = f"on by default; {flag} turns it off" if k.default else "off by default"
        action = "store_false" if k.default else "store_true"
        p.add_argument(flag, dest=k.name, action=action, default=None, help=f"{k.help} ({state})")
        return
    extra: dict[str, Any] = {"metavar": k.metavar} if k.metavar else {}
    if k.choices:
        extra["choices"] = k.choices
    if k.multiple:
        extra["action"] = "append"
    p.add_argument(k.flag, dest=k.name, type=k.kind, default=None, help=knob_help(k), **extra)


def _add_command(parent: argparse._SubParsersAction, name: str, c: Command) -> None:
    p = parent.add_parser(name, help=c.help, description=c.description or c.help)
    for o in c.options:
        p.add_argument(*o.flags, **o.kwargs)
    if c.project:
        p.add_argument(*PROJECT.flags, **PROJECT.kwargs)
    for k in c.knobs:
        if k.cli:
            _add_knob(p, k)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selfspec-tui", description="Self-specialize a local LLM into a domain expert.")
    p.add_argument(
        "--format",
        choices=["json", "text"],
        default=os.environ.get("SELFSPEC_FORMAT", "json"),
        help="json: JSON-lines events on stdout (for the TUI); text: for people",
    )
    top = p.add_subparsers(dest="group", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for c in COMMANDS:
        group, _, action = c.name.partition(" ")
        if not action:
            _add_command(top, group, c)
            continue
        if group not in groups:
            g = top.add_parser(group, help=GROUPS[group])
            groups[group] = g.add_subparsers(dest="cmd", required=True, metavar="ACTION")
        _add_command(groups[group], action, c)
    return p


def _quiet_libraries() -> None:
    """Offline, and library chatter (progress bars, warnings) to the log file, not the terminal."""
    import logging

    from engine import paths

    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TQDM_DISABLE": "1",  # transformers' GGUF loader draws its own progress bars
    }.items():
        os.environ.setdefault(key, value)
    try:
        log_dir = paths.home() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for item in (log_dir, *log_dir.iterdir()):  # logs hold prompts and data: owner only
            paths.make_private(item)
        handler: logging.Handler = logging.FileHandler(log_dir / "engine.log", encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.captureWarnings(True)


def _bad_argument(args: argparse.Namespace) -> str | None:
    """An argument that cannot be stored or shown (bytes that are not UTF-8 arrive as surrogates)."""
    from engine.infile import text_problem

    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and text_problem(item):
                return f"argument --{name.replace('_', '-')} {ascii(item)}: {text_problem(item)}"
    return None


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # text that is not valid Unicode is shown escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    key = f"{args.group} {args.cmd}" if getattr(args, "cmd", None) else args.group
    command = BY_NAME[key]
    emit = json_sink() if args.format == "json" else render.text_sink()
    bad = _bad_argument(args)
    if bad:
        emit(ev.Failed(bad, key, None, "input"))
        return runner.EXIT_USER
    project = getattr(args, "project", None) if command.project else None
    config = {k: v for k, v in vars(args).items() if k not in ("format", "group", "cmd")}
    handler = command.load_handler()
    lock = command.lock if command.lock and not getattr(args, "status", False) else ""  # reading is never refused

    def body(ctx: Any) -> Any:
        if not lock:
            return handler(ctx, args)
        with ctx.exclusive(lock, key):
            return handler(ctx, args)

    return runner.execute(emit, key, body, project, config, command.records_run)
