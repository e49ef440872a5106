"""A model's own chat template (from GGUF metadata or an HF folder), rendered to a raw prompt.

Generation sends raw text to every runtime; in chat style the brainstorm and answer prompts become
one user turn rendered through the model's template, followed by the start of the assistant's turn
(and any text the assistant is meant to continue from). Templates are Jinja, run sandboxed.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import UserError

GGUF_KEY = "tokenizer.chat_template"


def read_template(fmt: str, path: Path) -> str | None:
    """The model's chat template, or None when it has none (a base model)."""
    try:
        if fmt == "gguf":
            return _gguf_template(path)
        if fmt == "hf":
            return _hf_template(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read its chat template: {exc}") from exc
    return None


def _gguf_template(path: Path) -> str | None:
    from engine.backends.gguf_meta import read_gguf_metadata

    value = read_gguf_metadata(path).get("metadata", {}).get(GGUF_KEY)
    return value if isinstance(value, str) and value else None


def _hf_template(path: Path) -> str | None:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8") or None
    config = path / "tokenizer_config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    if isinstance(value, list):  # named templates: the default one
        value = next((t.get("template") for t in value if t.get("name") == "default"), None)
    return value if isinstance(value, str) and value else None


def render(template: str, user: str, assistant_start: str = "") -> str:
    """One user turn and the opening of the assistant's reply, as the raw text the model sees.

    The BOS token is left to the runtime (it adds one where the model wants it)."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        text = env.from_string(template).render(
            messages=[{"role": "user", "content": user}],
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        )
    except TemplateError as exc:
        raise UserError(f"the model's chat template failed: {exc}") from exc
    return text + assistant_start


def wrapper(fmt: str, path: Path, name: str):  # type: ignore[no-untyped-def]
    """(user text, assistant opening) -> raw prompt through the model's own template (prompt style chat)."""
    template = read_template(fmt, path)
    if template is None:
        raise UserError(f"{name} has no chat template: generate with --prompt-style completion")
    return lambda user, opening: render(template, user, opening)
