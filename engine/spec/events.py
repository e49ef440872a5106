"""The engine's JSON-lines events and the chat serve requests, as dataclasses.

One line of `python -m engine --format json` output is one event: `{"event": KIND, ...fields}`.
The engine builds these classes and the sink writes `to_dict(event)`; the TUI reads each line
back with `parse(line_object)` and works with attributes, never with `.get("...")` on a dict.
Progress and item events carry stage-specific figures in `extra` / `fields` (flattened on the
wire: counters, dropped, tokens_per_s, loss, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

ErrorKind = Literal["input", "store", "io", "internal"]


@dataclass(frozen=True)
class Started:
    KIND: ClassVar[str] = "started"
    stage: str
    run_id: int | None = None
    pid: int = 0
    project: str | None = None


@dataclass(frozen=True)
class Progress:
    KIND: ClassVar[str] = "progress"
    stage: str
    done: int = 0
    total: int | None = None
    unit: str = "items"
    rate: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    """stage figures: counters, dropped, tokens_per_s (generation); loss, val_loss, lr, epoch, step_loss (training)"""


@dataclass(frozen=True)
class Item:
    """A unit of work decided: a brainstormed task (kept or dropped) or an answered example."""

    KIND: ClassVar[str] = "item"
    kind: Literal["task", "example"]
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = "") -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class Log:
    KIND: ClassVar[str] = "log"
    message: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Result:
    KIND: ClassVar[str] = "result"
    data: Any = None


@dataclass(frozen=True)
class Finished:
    KIND: ClassVar[str] = "finished"
    stage: str
    run_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    KIND: ClassVar[str] = "failed"
    error: str
    stage: str = ""
    run_id: int | None = None
    kind: ErrorKind = "internal"


@dataclass(frozen=True)
class Interrupted:
    KIND: ClassVar[str] = "interrupted"
    stage: str = ""
    run_id: int | None = None
    message: str = "stopped on request; run the same command again to resume"
    early: bool = False
    """cancelled before the engine could answer (the TUI makes this one up)"""


@dataclass(frozen=True)
class Ready:
    """A serving child is ready (corpus serve; chat serve with the models it offers)."""

    KIND: ClassVar[str] = "ready"
    models: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Loaded:
    KIND: ClassVar[str] = "loaded"
    models: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Conversation:
    KIND: ClassVar[str] = "conversation"
    id: int
    models: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Token:
    KIND: ClassVar[str] = "token"
    pane: int
    text: str


@dataclass(frozen=True)
class Turn:
    KIND: ClassVar[str] = "turn"
    conversation: int
    replies: list[dict[str, Any]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)
    """the corpus passages a grounded turn answered with: source, score, text"""


@dataclass(frozen=True)
class TurnFailed:
    KIND: ClassVar[str] = "turn_failed"
    error: str
    dropped_conversation: bool = False


@dataclass(frozen=True)
class Exited:
    """The child's output ended (the TUI makes this one up, with the tail of its stderr)."""

    KIND: ClassVar[str] = "exited"
    error: str = ""


Event = (
    Started | Progress | Item | Log | Result | Finished | Failed | Interrupted
    | Ready | Loaded | Conversation | Token | Turn | TurnFailed | Exited
)  # fmt: skip
ENDINGS = (Finished, Failed, Interrupted)
_CLASSES: dict[str, Any] = {
    c.KIND: c
    for c in (Started, Progress, Item, Log, Result, Finished, Failed, Interrupted)
    + (Ready, Loaded, Conversation, Token, Turn, TurnFailed, Exited)
}
_FLATTENED = {Progress: "extra", Item: "fields"}


def to_dict(event: Any) -> dict[str, Any]:
    """The wire form: {"event": KIND, ...}; a plain dict passes through."""
    if isinstance(event, dict):
        return event
    data = asdict(event)
    bag = _FLATTENED.get(type(event))
    if bag:
        data.update(data.pop(bag))
    return {"event": event.KIND, **data}


def parse(raw: dict[str, Any]) -> Event | None:
    """The event a JSON object stands for; None for anything that is not one of ours."""
    cls = _CLASSES.get(str(raw.get("event")))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    known = {k: v for k, v in raw.items() if k in names and k != "event"}
    bag = _FLATTENED.get(cls)
    if bag:
        known[bag] = {k: v for k, v in raw.items() if k not in names and k != "event"}
    try:
        return cls(**known)  # type: ignore[no-any-return]
    except TypeError:  # a required field missing: not an event we can use
        return None


# ---- chat serve requests (stdin of `chat --serve`, one JSON object per line) ----------------


@dataclass(frozen=True)
class LoadRequest:
    OP: ClassVar[str] = "load"
    models: list[str]


@dataclass(frozen=True)
class SendRequest:
    """One message to the conversation's models (a new conversation when `conversation` is None).
    Sampling values are passed on as given; the engine checks them against ChatSampling."""

    OP: ClassVar[str] = "send"
    text: str
    models: list[str] = field(default_factory=list)
    conversation: int | None = None
    system: str = ""
    temperature: Any = None
    top_p: Any = None
    max_tokens: Any = None
    stop: Any = None
    grounded: bool = False
    """answer with passages retrieved from the project's corpus (shown with the reply)"""

    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "stop": self.stop}


@dataclass(frozen=True)
class StopRequest:
    OP: ClassVar[str] = "stop"


Request = LoadRequest | SendRequest | StopRequest


def request_dict(req: Request) -> dict[str, Any]:
    return {"op": req.OP, **asdict(req)}


def _names(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise ValueError(f"{what}: expected a list of model names")
    return list(raw)


def parse_request(obj: Any) -> Request:
    """The request a JSON object stands for; ValueError names what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON request object")
    op = obj.get("op", "send")
    if op == StopRequest.OP:
        return StopRequest()
    if op == LoadRequest.OP:
        return LoadRequest(_names(obj.get("models"), "models"))
    if op != SendRequest.OP:
        raise ValueError(f"op: unknown request {op!r} (load, send or stop)")
    conversation = obj.get("conversation")
    if conversation is not None and (isinstance(conversation, bool) or not isinstance(conversation, int)):
        raise ValueError(f"conversation: {conversation!r} is not a conversation id")
    sampling = {k: obj.get(k) for k in ("temperature", "top_p", "max_tokens", "stop")}
    return SendRequest(
        text=str(obj.get("text") or ""),
        models=_names(obj.get("models"), "models"),
        conversation=conversation or None,
        system=str(obj.get("system") or ""),
        grounded=obj.get("grounded") is True,
        **sampling,
    )
