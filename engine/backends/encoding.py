"""Training examples as token ids: the prompt masked out of the loss, the response and its EOS kept;
and the length-grouped micro-batches of one epoch. Needs only a tokenizer, no torch."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError
from engine.spec.prompts import alpaca_prompt, user_turn

IGNORE = -100


@dataclass(frozen=True)
class TrainExample:
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def response_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def encode(tokenizer: Any, examples: Sequence[TrainExample], fmt: str, max_length: int) -> tuple[list[Encoded], int]:
    """Token ids with the loss on the response only (and its end-of-sequence token).

    Returns the encoded examples and how many had no response token left within max_length.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError("the base model's tokenizer has no end-of-sequence token; cannot teach it to stop")
    if fmt == "chat" and not getattr(tokenizer, "chat_template", None):
        raise UserError("the base model has no chat template: use --prompt-format alpaca")
    out: list[Encoded] = []
    skipped = 0
    for ex in examples:
        prompt = prompt_ids(tokenizer, ex.instruction, ex.input, fmt)
        if fmt == "chat":
            user = [{"role": "user", "content": user_turn(ex.instruction, ex.input)}]
            full = _chat_ids(tokenizer, [*user, {"role": "assistant", "content": ex.output.strip()}], False)
            if full[: len(prompt)] != prompt:  # a template that re-renders the prompt differently
                full = prompt + tokenizer(ex.output.strip(), add_special_tokens=False)["input_ids"]
            response = full[len(prompt) :]
            if not response or response[-1] != eos:
                response = [*response, eos]
        else:
            response = tokenizer(ex.output.strip(), add_special_tokens=False)["input_ids"] + [eos]
        ids = (list(prompt) + list(response))[:max_length]
        labels = ([IGNORE] * len(prompt) + list(response))[:max_length]
        if all(x == IGNORE for x in labels):
            skipped += 1
            continue
        out.append(Encoded(ids, labels))
    return out, skipped


def prompt_ids(tokenizer: Any, instruction: str, input_text: str, fmt: str) -> list[int]:
    """The token ids a model tuned in `fmt` answers: the Alpaca prompt, or the chat template's user
    turn with the assistant's turn opened."""
    if fmt == "chat":
        return _chat_ids(tokenizer, [{"role": "user", "content": user_turn(instruction, input_text)}], True)
    return [int(x) for x in tokenizer(alpaca_prompt(instruction, input_text), add_special_tokens=True)["input_ids"]]


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    """Token ids of a rendered chat (transformers returns a dict or a list depending on version)."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return [int(x) for x in out]


def epoch_batches(lengths: Sequence[int], micro: int, seed: int, epoch: int) -> list[list[int]]:
    """Micro-batches of example indices for one epoch, deterministic in (seed, epoch).

    Shuffled, then sorted by length inside windows of 64 micro-batches and cut, so a batch holds
    examples of similar length (little padding); the batches themselves are shuffled again.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = micro * 64
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + micro] for i in range(0, len(chunk), micro)]
    rng.shuffle(batches)
    return batches
