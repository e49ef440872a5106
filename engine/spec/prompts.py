"""Prompt styles, in one place: how an instruction (and its input) becomes the text a model sees.

`alpaca` is the plain completion layout the papers use for generation, and what a trained expert
is tuned on by default; `chat` means the model's own chat template (rendered by the runtime).
Generation, training, export (parity texts, Modelfile), chat and evaluation all use these, and
each adapter records the style it was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

PromptFormat = Literal["alpaca", "chat"]
PROMPT_FORMATS: tuple[PromptFormat, ...] = ("alpaca", "chat")

ALPACA_STOP: tuple[str, ...] = ("### Instruction", "### Input", "\n### ")
"""where an Alpaca-style answer ends: the model starting the next block"""


def alpaca_block(instruction: str, input_text: str, output: str | None = None) -> str:
    """One Alpaca block; without `output` it ends at "### Response:" for the model to continue."""
    text = f"### Instruction:\n{instruction.strip()}\n\n"
    if input_text.strip():
        text += f"### Input:\n{input_text.strip()}\n\n"
    text += "### Response:\n"
    if output is not None:
        text += output.strip() + "\n\n"
    return text


def alpaca_prompt(instruction: str, input_text: str) -> str:
    """The prompt an Alpaca-format model answers; the response follows it."""
    return alpaca_block(instruction, input_text)


def few_shot(demos: Iterable[tuple[str, str, str]], instruction: str, input_text: str) -> str:
    """Answered (instruction, input, output) demonstrations, then the open question."""
    return "".join(alpaca_block(i, x, o) for i, x, o in demos) + alpaca_prompt(instruction, input_text)


def user_turn(instruction: str, input_text: str) -> str:
    """An instruction and its input as one chat message."""
    return f"{instruction.strip()}\n\n{input_text.strip()}" if input_text.strip() else instruction.strip()


def alpaca_conversation(system: str, turns: Sequence[Mapping[str, str]]) -> str:
    """A conversation written as the Alpaca blocks an alpaca-format expert was tuned on."""
    text = f"{system.strip()}\n\n" if system.strip() else ""
    for t in turns:
        text += alpaca_prompt(t["content"], "") if t["role"] == "user" else t["content"].strip() + "\n\n"
    return text


def chat_messages(system: str, turns: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The messages a chat-template model is given (the system message only when there is one)."""
    head = [{"role": "system", "content": system}] if system.strip() else []
    return head + [dict(t) for t in turns]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def modelfile(quant_file: str, prompt_format: str, temperature: float = 0.2, top_p: float = 0.9) -> str:
    """An Ollama Modelfile for an exported expert, in the prompt style it was tuned with."""
    lines = [f"FROM ./{quant_file}", f"PARAMETER temperature {temperature}", f"PARAMETER top_p {top_p}"]
    if prompt_format == "alpaca":
        lines += [
            'TEMPLATE """### Instruction:\n{{ .Prompt }}\n\n### Response:\n"""',
            'PARAMETER stop "### Instruction"',
        ]
    # chat: the chat template stored in the GGUF is used as it is
    return "\n".join(lines) + "\n"
