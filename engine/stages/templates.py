"""Prompt templates (ss-v1 and ss-v2 share them): brainstorming new tasks, and answering one with passages.

Both are plain completion prompts, as in the papers: the base model continues a document, so the
same text works for base and chat-tuned models and for both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.spec.prompts import alpaca_block

NO_INPUT = "<noinput>"
BRAINSTORM_HEAD = "List of tasks:"
"""the line after which a brainstorm prompt lists tasks (also a stop string: the model restarting)"""
PASSAGES_HEAD = "Passages that may help"


@dataclass(frozen=True)
class Demo:
    instruction: str
    input: str
    output: str = ""
    task_type: str = ""


def requirements(domain: str, task_types: Sequence[str], topics: Sequence[str]) -> list[str]:
    kinds = ", ".join(t.replace("_", " ") for t in task_types[:8]) or "questions, extraction, summarization"
    items = [
        f"Every task is about {domain} and asks for knowledge or reasoning a {domain} expert would need.",
        f"Vary the task types, for example: {kinds}; multiple choice tasks list their options in the input.",
        "Vary the wording: do not start every instruction with the same verb.",
        "A language model must be able to do the task in text alone: nothing about images, audio, files, "
        "drawings or actions in the world.",
        "Write in English.",
        "The instruction is one or two sentences, an imperative sentence or a question.",
        f"Give the task a realistic and substantial input (such as a passage, a case or data from {domain}); "
        f"never a placeholder. If the task needs no input, write {NO_INPUT}.",
    ]
    if topics:
        items.append("Cover topics such as: " + ", ".join(topics) + ".")
    return items


def task_block(n: int, d: Demo) -> str:
    return (
        f"Task {n}\nType: {d.task_type or 'general'}\nInstruction: {d.instruction.strip()}\n"
        f"Input: {d.input.strip() or NO_INPUT}\n"
    )


def brainstorm_prompt(domain: str, demos: Sequence[Demo], reqs: Sequence[str]) -> str:
    """Ends inside the next task's header so the model continues the list."""
    lines = [
        f"You are asked to come up with a set of new, diverse tasks in the domain of {domain}. These tasks "
        "will be given to a language model, and we will judge how well it completes them.",
        "",
        "Here are the requirements:",
        *(f"{i}. {r}" for i, r in enumerate(reqs, 1)),
        "",
        BRAINSTORM_HEAD,
        "",
    ]
    body = "\n".join(task_block(i, d) for i, d in enumerate(demos, 1))
    return "\n".join(lines) + body + f"\nTask {len(demos) + 1}\nType:"


def brainstorm_prefix(n_demos: int) -> str:
    """What the prompt already said of the first new task; the parser reads it plus the completion."""
    return f"Task {n_demos + 1}\nType:"


def brainstorm_stop(n_demos: int, per_prompt: int) -> tuple[str, ...]:
    return (f"Task {n_demos + per_prompt + 1}\n", BRAINSTORM_HEAD, "Here are the requirements")


def _answer_block(d: Demo, with_output: bool) -> str:
    return alpaca_block(d.instruction, d.input, d.output if with_output else None)


@dataclass(frozen=True)
class Passage:
    source: str
    text: str


def response_prompt(domain: str, demos: Sequence[Demo], passages: Sequence[Passage], task: Demo) -> str:
    head = (
        f"You are a knowledgeable expert in {domain}. Complete each task accurately and concisely, "
        "in the form the instruction asks for.\n\n"
    )
    shots = "".join(_answer_block(d, True) for d in demos)
    context = ""
    if passages:
        context = (
            f"{PASSAGES_HEAD} with the next task:\n"
            + "".join(f"[{i}] ({p.source}) {' '.join(p.text.split())}\n" for i, p in enumerate(passages, 1))
            + "\n"
        )
    return head + shots + context + _answer_block(task, False)


RESPONSE_STOP = ("### Instruction", "\n### ", PASSAGES_HEAD)
