"""Prompt templates: brainstorming new tasks (free, or grounded on a corpus passage), and answering one
with passages.

In completion style (every template before ss-v3, and base models) they are plain documents the
model continues, as in the papers. In chat style the same text is the user's turn, rendered through
the model's own chat template, and the assistant's turn opens with what the model should continue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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


Wrap = Callable[[str, str], str]
"""(user text, assistant opening) -> the raw prompt"""


def completion(user: str, opening: str) -> str:
    return user + opening


def brainstorm_prompt(domain: str, demos: Sequence[Demo], reqs: Sequence[str], wrap: Wrap = completion) -> str:
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
    user = "\n".join(lines) + body
    if wrap is not completion:
        user += f"\nContinue the list in the same format, starting with Task {len(demos) + 1}."
    return wrap(user, ("\n" if wrap is completion else "") + f"Task {len(demos) + 1}\nType:")


# ---- grounded brainstorm: the new task's input is a passage of the user's corpus ----------------


def grounded_requirements(domain: str, task_types: Sequence[str]) -> list[str]:
    kinds = ", ".join(t.replace("_", " ") for t in task_types[:8]) or "questions, extraction, summarization"
    return [
        f"Each task is about the {domain} text given as its input: the text is real, do not change it.",
        "The instruction asks for something the text lets an expert do: answer a question the text answers, "
        "extract entities or relations, summarize, classify, or answer yes, no or maybe.",
        f"Vary the task types, for example: {kinds}.",
        "The instruction is one or two sentences and makes sense next to its input.",
        "Write in English.",
    ]


def one_line(text: str) -> str:
    return " ".join(text.split())


def grounded_block(n: int, d: Demo) -> str:
    kind = d.task_type or "general"
    return f"Task {n}\nInput: {one_line(d.input)}\nType: {kind}\nInstruction: {d.instruction.strip()}\n"


_LEAD = re.compile(r"^(.{8,70}?:)\s")


def instruction_lead(instruction: str) -> str:
    """The lead-in of an instruction ("Based on the abstract, answer yes, no or maybe:"), or ''."""
    found = _LEAD.match(instruction.strip())
    return found.group(1) if found else ""


def grounded_prefix(n_demos: int, passage: str, task_type: str, lead: str = "") -> str:
    """What the prompt already said of the new task (its passage and type, up to its instruction and
    a seed's lead-in when there is one); the parser reads it plus the completion."""
    opening = f" {lead}" if lead else ""
    return f"Task {n_demos + 1}\nInput: {one_line(passage)}\nType: {task_type}\nInstruction:{opening}"


def grounded_prompt(
    domain: str,
    demos: Sequence[Demo],
    reqs: Sequence[str],
    passage: str,
    task_type: str,
    wrap: Wrap = completion,
    lead: str = "",
) -> str:
    """Demonstrations of one task type whose inputs are passages, then the corpus passage: the model
    writes the instruction of one task of that type for it."""
    lines = [
        f"You are asked to write tasks in the domain of {domain}, each about a given text. These tasks will "
        "be given to a language model, and we will judge how well it completes them.",
        "",
        "Here are the requirements:",
        *(f"{i}. {r}" for i, r in enumerate(reqs, 1)),
        "",
        BRAINSTORM_HEAD,
        "",
    ]
    user = "\n".join(lines) + "\n".join(grounded_block(i, d) for i, d in enumerate(demos, 1))
    if wrap is not completion:
        user += f"\nContinue with Task {len(demos) + 1}: write its instruction for the input given."
    return wrap(user, ("\n" if wrap is completion else "") + grounded_prefix(len(demos), passage, task_type, lead))


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


def response_prompt(
    domain: str, demos: Sequence[Demo], passages: Sequence[Passage], task: Demo, wrap: Wrap = completion
) -> str:
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
    return wrap(head + shots + context + _answer_block(task, False), "")


RESPONSE_STOP = ("### Instruction", "\n### ", PASSAGES_HEAD)
