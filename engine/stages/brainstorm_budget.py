"""How brainstorming spends tokens: the per-prompt limit sized from the seeds, the watch that ends a
completion before a task that would be thrown away, and how many prompts go in one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.spec.generate import GenerateConfig
from engine.stages.task_parser import task_starts
from engine.stages.templates import Demo, task_block
from engine.store.records import Seed

RUNAWAY = 3
"""a brainstormed task running past this many times a typical seed task is ended before the limit cuts it"""


def plan_tokens(
    cfg: GenerateConfig, seeds: Sequence[Seed], count_tokens: Callable[[str], int], grounded: bool = False
) -> tuple[int, int]:
    """The brainstorm token limit, and the tokens one new task is expected to take (p90 of the seeds).
    A grounded task's input is given, so only its type and instruction count, and a prompt asks for one."""
    if not cfg.size_from_seeds:
        return cfg.brainstorm.max_tokens, 0
    blocks = [task_block(1, Demo(s.instruction, "" if grounded else s.input, "", s.task_type)) for s in seeds]
    sizes = sorted(count_tokens(b) for b in blocks)
    per_task = sizes[int(0.9 * (len(sizes) - 1))]
    return min(cfg.brainstorm.max_tokens, per_prompt(cfg, grounded) * per_task * 2 + 16), per_task


def per_prompt(cfg: GenerateConfig, grounded: bool) -> int:
    """New tasks asked of one prompt: one per passage when grounded."""
    return 1 if grounded else cfg.tasks_per_prompt


def watch(prefix: str, want: int, limit: int, per_task: int) -> Callable[[str, int], int | None]:
    """Ends a completion once it begins a task past the per-prompt count, begins one that the
    remaining token budget cannot finish, or lets one run past RUNAWAY typical tasks: no tokens
    go to a task that would be thrown away. `prefix` is what the prompt already wrote of the first task."""

    def check(text: str, tokens: int) -> int | None:
        line_end = text.endswith("\n")
        if not line_end and tokens % 16:
            return None
        full = prefix + text
        starts = task_starts(full)
        if line_end and len(starts) > want:
            return max(0, starts[want] - len(prefix))
        if not per_task or not starts:
            return None
        current = len(full) - max(starts[-1], len(prefix))  # the open task's characters in the text
        if tokens * current / max(len(text), 1) > RUNAWAY * per_task:
            return max(0, starts[-1] - len(prefix))  # a runaway task: the limit would cut it anyway
        just_began = len(starts) > 1 and starts[-1] == full.rfind("\n", 0, len(full) - 1) + 1
        if line_end and just_began and tokens + per_task > limit:
            return max(0, starts[-1] - len(prefix))
        return None

    return check


def grounded_watch(text: str, tokens: int) -> int | None:
    """A grounded prompt ends at "Instruction:", and the task is that one line (its input is the
    passage): the completion ends with the line, so no token goes to the model's rambling past it."""
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    return end + 1 if start < len(text) and end > 0 else None


def call_size(cfg: GenerateConfig, slots: int, target: int, done: int, kept: int, asked: int) -> int:
    """Prompts in the next call: a full batch of slots (a batch costs little more than one prompt),
    up to two per slot while the target needs that many at the yield seen so far (a pure function
    of stored counts, so a resumed run makes the same calls)."""
    if not cfg.size_from_seeds:
        return slots  # an ss-v1 generation keeps its layout
    rate = kept / done if done >= slots else asked / 2
    needed = -(-(target - kept) // max(rate, 0.25))
    return int(max(slots, min(2 * slots, needed)))
