"""Stage forms as data: form values to a command line, a stored config back to form values.

Both read a command's knobs (engine.spec), so the form's fields, labels and defaults are the
CLI's own."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from engine.spec.stage import Command, Knob


def form_knobs(command: Command, skip: Collection[str] = ()) -> list[Knob]:
    return [k for k in command.knobs if k.form and k.name not in skip]


def switch_flag(k: Knob) -> str:
    """The flag that turns a switch away from its default."""
    return f"--no-{k.name.replace('_', '-')}" if k.default else k.flag


def form_args(command: Command, values: Mapping[str, Any], skip: Collection[str] = ()) -> list[str]:
    """Options for the values a form holds (blank fields are left to the engine's defaults;
    comma-separated text repeats a multiple option; a switch is passed when it differs from its default)."""
    args: list[str] = []
    for k in form_knobs(command, skip):
        value = values.get(k.name, values.get(k.form_id))
        if k.kind is bool:
            if value is not None and bool(value) != bool(k.default):
                args.append(switch_flag(k))
            continue
        text = str(value if value is not None else "").strip()
        if not text:
            continue
        parts = [p.strip() for p in text.split(",")] if k.multiple else [text]
        for part in filter(None, parts):
            args += [k.flag, part]
    return args


def values_from(knobs: Sequence[Knob], stored: Mapping[str, Any]) -> dict[str, str]:
    """Form values of the knobs a stored config holds (the form shows what will resume)."""
    out: dict[str, str] = {}
    for k in knobs:
        node: Any = stored
        for part in k.path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and k.kind is not bool:
            out[k.name] = ", ".join(map(str, node)) if isinstance(node, list | tuple) else str(node)
    return out
