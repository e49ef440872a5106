"""Every command is declared once (engine.spec.commands): the CLI parser, the handlers and the
TUI forms all come from the declarations, and show the same defaults."""

from __future__ import annotations

import argparse

import pytest
from textual.widgets import Input, Select, Switch

from engine.cli import build_parser
from engine.spec.commands import COMMANDS, stage
from selfspec_tui.app import SelfSpecApp
from tests.helpers import wait_for


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for word in name.split():
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def test_every_declared_command_parses_and_has_its_handler() -> None:
    parser = build_parser()
    for command in COMMANDS:
        sub = _subparser(parser, command.name)
        flags = {f for a in sub._actions for f in a.option_strings}
        assert ("--project" in flags) == (command.project or any("--project" in o.flags for o in command.options))
        for knob in command.knobs:
            if knob.cli and knob.kind is not bool:
                assert knob.flag in flags, (command.name, knob.name)
        assert callable(command.load_handler()), command.name


def test_cli_help_shows_each_knob_default_from_its_config() -> None:
    parser = build_parser()
    for command in (c for c in COMMANDS if c.knobs):
        sub = _subparser(parser, command.name)
        helps = {a.dest: a.help or "" for a in sub._actions}
        defaults = command.config() if command.config else None
        for knob in command.knobs:
            if not knob.cli or knob.kind is bool:
                continue
            if knob.default_text():
                assert f"(default {knob.default_text()})" in helps[knob.name], (command.name, knob.name)
            if defaults is not None and knob.path[0] in type(defaults).model_fields and knob.name != "seed":
                value = defaults
                for part in knob.path:
                    value = getattr(value, part)
                assert value == knob.default, (command.name, knob.name)


def _form_value(screen, knob):  # type: ignore[no-untyped-def]
    widget = screen.query_one(f"#{knob.form_id}")
    if isinstance(widget, Switch):
        return widget.value
    if isinstance(widget, Select):
        return str(widget.value)
    assert isinstance(widget, Input)
    return widget.value


@pytest.mark.parametrize(("key", "command"), [("g", "generate"), ("t", "train"), ("e", "eval run")])
async def test_tui_forms_show_the_cli_defaults(db, key: str, command: str) -> None:
    from engine.store import projects

    projects.create(db, "forms", "biomedicine", "smollm2-135m-instruct", {"embedder": "fake-hash"})
    app = SelfSpecApp(project="forms")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press(key)
        await wait_for(pilot, lambda: getattr(app.screen, "COMMAND", "") == command)
        shown = [k for k in stage(command).knobs if k.form]
        assert shown
        for knob in shown:
            want = bool(knob.default) if knob.kind is bool else knob.default_text()
            assert _form_value(app.screen, knob) == want, (command, knob.name)


def test_chat_sampling_fields_are_the_chat_knobs() -> None:
    from selfspec_tui.screens.chat import SAMPLING, read_sampling

    assert [k.name for k in SAMPLING] == ["temperature", "top_p", "max_tokens"]
    assert read_sampling({}) == {k.name: k.default for k in SAMPLING}
    parser = build_parser()
    helps = {a.dest: a.help for a in _subparser(parser, "chat")._actions}
    for k in SAMPLING:
        assert f"(default {k.default_text()})" in str(helps[k.name])
