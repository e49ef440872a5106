"""Engine events as Textual messages: a screen's handlers run in order on its own message queue."""

from __future__ import annotations

from textual.message import Message

from engine.spec import events as ev
from selfspec_tui.engine_client import RunOutcome


class EngineEvent(Message):
    """One event from an engine child; a progress event waiting behind a newer one is dropped,
    unless it carries a data point of its own (training's per-step loss for the chart)."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, EngineEvent)
            and isinstance(self.event, ev.Progress)
            and isinstance(message.event, ev.Progress)
            and "step_loss" not in self.event.extra
        )


class RunEnded(Message):
    """The child exited; posted after its last event, so it is handled after all of them."""

    def __init__(self, outcome: RunOutcome, args: list[str], label: str) -> None:
        super().__init__()
        self.outcome, self.args, self.label = outcome, args, label
