"""How a command is declared: once, here in the pure layer, for the CLI, the TUI and their checks.

A `Command` names its handler (imported only when it runs), says whether it needs a project,
records a run and takes a lock, and lists its options. A stage with many settings also names its
frozen pydantic config: every `Knob` of that config becomes a command-line option whose help is
the field's description and whose default is the config's own, and the TUI builds its form from
the same knobs, so a default lives in exactly one place.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

Resume = Literal["none", "refuse-changes", "keyed"]
"""refuse-changes: an unfinished run resumes with its stored settings and refuses other ones
(run-control knobs may change); keyed: the settings are the key, the same settings continue the
same job; none: the command does not resume"""


@dataclass(frozen=True)
class Option:
    """A plain argparse option or positional (for commands without a config model)."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def opt(*flags: str, **kwargs: Any) -> Option:
    return Option(tuple(flags), kwargs)


PROJECT = opt("--project", required=True, help="the project's name")


@dataclass(frozen=True)
class Knob:
    """One user-facing setting of a stage config."""

    name: str
    path: tuple[str, ...]
    flag: str
    kind: type
    default: Any
    help: str
    label: str
    choices: tuple[str, ...] = ()
    multiple: bool = False
    """a list on the command line (the flag repeats)"""
    run_control: bool = False
    """may change when an unfinished run resumes: it does not change what the result is made of"""
    form: bool = True
    cli: bool = True
    """an option on the command line (some settings are left at their defaults there)"""
    metavar: str = ""
    widget_id: str = ""
    """the form widget's id when it is not the knob's name"""

    @property
    def form_id(self) -> str:
        return self.widget_id or self.name

    """shown in the TUI form"""

    def default_text(self) -> str:
        """The default as the CLI help and the TUI form both show it."""
        if self.default is None:
            return ""
        if isinstance(self.default, tuple | list):
            return ", ".join(str(v) for v in self.default)
        return str(self.default)


@dataclass(frozen=True)
class Command:
    name: str
    handler: str
    """'module:function'; the function takes (ctx, argparse.Namespace)"""
    help: str
    description: str = ""
    project: bool = False
    records_run: bool = False
    lock: str = ""
    """unit of the store's per-project lock held while it runs ('' = none)"""
    options: tuple[Option, ...] = ()
    config: type[BaseModel] | None = None
    knobs: tuple[Knob, ...] = ()
    resume: Resume = "none"
    events: tuple[type, ...] = ()
    """the event classes (engine.spec.events) it sends beyond started/finished/failed/interrupted"""

    def load_handler(self) -> Callable[..., Any]:
        module, _, func = self.handler.partition(":")
        return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]

    def knob(self, name: str) -> Knob:
        return next(k for k in self.knobs if k.name == name)


def _scalar(annotation: Any) -> tuple[type, tuple[str, ...]]:
    """The Python type of a field (of its items, for a tuple) and its choices (for Literal fields)."""
    origin = get_origin(annotation)
    if origin in (tuple, list):
        return _scalar(get_args(annotation)[0])
    if origin is Literal:
        return str, tuple(str(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar(inner[0])
    if isinstance(annotation, type):
        return annotation, ()
    return str, ()


def knobs_of(
    config: type[BaseModel],
    flat: Mapping[str, tuple[str, ...]] | None = None,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Knob, ...]:
    """The knobs of a config: `flat` maps option names to field paths (default: every top-level
    field under its own name); `meta` gives per-option flag, label, help, run_control, form.

    Help and defaults come from the fields themselves (description; the config's default value).
    """
    flat = flat or {name: (name,) for name in config.model_fields}
    meta = meta or {}
    defaults = config()
    out = []
    for name, path in flat.items():
        owner: type[BaseModel] = config
        value: Any = defaults
        for part in path[:-1]:
            owner = owner.model_fields[part].annotation  # type: ignore[assignment]
            value = getattr(value, part)
        info = owner.model_fields[path[-1]]
        kind, choices = _scalar(info.annotation)
        extra = dict(meta.get(name, {}))
        out.append(
            Knob(
                name=name,
                path=path,
                flag=extra.pop("flag", "--" + name.replace("_", "-")),
                kind=kind,
                default=extra.pop("default", getattr(value, path[-1])),
                help=extra.pop("help", info.description or name.replace("_", " ")),
                label=extra.pop("label", name.replace("_", " ")),
                choices=choices,
                multiple=get_origin(info.annotation) in (tuple, list),
                **extra,
            )
        )
    return tuple(out)


def given(knobs: Sequence[Knob], values: Any) -> dict[str, Any]:
    """The knobs set on the command line (argparse leaves the others None)."""
    out = {}
    for k in knobs:
        value = getattr(values, k.name, None)
        if value is not None:
            out[k.name] = tuple(value) if isinstance(value, list) else value
    return out


def build(
    config: type[BaseModel], knobs: Sequence[Knob], options: Mapping[str, Any], base: BaseModel | None = None
) -> Any:
    """A config from option values over `base` (the defaults when None)."""
    data = (base or config()).model_dump()
    paths = {k.name: k.path for k in knobs}
    for name, value in options.items():
        path = paths.get(name, (name,))
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return config.model_validate(data)


def describe_errors(exc: Exception, knobs: Sequence[Knob]) -> str:
    """pydantic errors as '--flag: message' lines, with the command line's names."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    flags = {k.path: k.flag for k in knobs}
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        flag = flags.get(loc) or ("--" + ".".join(loc).replace("_", "-") if loc else "options")
        lines.append(f"{flag}: {err['msg']}")
    return "; ".join(lines)
