"""Chat: talk to the base model and the experts, one model or two side by side, replies streaming.

The models run in a long-lived `chat --serve` child (llama.cpp, threads within the free cores).
This screen only sends requests, paints the streamed pieces and reads stored conversations.
"""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static

from engine.spec import events as ev
from engine.spec.commands import stage
from engine.store import chats, projects
from selfspec_tui.engine_client import ChatSession
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.chat_conversations import ConversationActions
from selfspec_tui.screens.chat_text import passages_text, transcript
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.text_pane import TextPane

# the sampling settings sent with every message: the chat command's knobs (labels and defaults)
SAMPLING = [k for k in stage("chat").knobs if k.form]
PAINT_EVERY_S = 0.05  # streamed pieces are painted in batches, not one repaint per token


def read_sampling(values: dict[str, str]) -> dict[str, Any]:
    """The sampling fields as numbers; ValueError names the field that is not one (the engine
    checks the ranges)."""
    out: dict[str, Any] = {}
    for k in SAMPLING:
        raw = values.get(k.name, "").strip() or k.default_text()
        try:
            out[k.name] = k.kind(raw)
        except ValueError:
            what = "a whole number" if k.kind is int else "a number"
            raise ValueError(f"{k.label}: {raw!r} is not {what}") from None
    return out


class ChatScreen(ConversationActions, AppScreen):
    BINDINGS = [
        Binding("ctrl+x", "stop", "Stop reply", priority=True),
        Binding("ctrl+n", "new", "New chat", priority=True),
        Binding("ctrl+o", "conversations", "Conversations", priority=True),
        Binding("ctrl+b", "side_by_side", "Side by side", priority=True),
        Binding("ctrl+g", "ground", "Ground in corpus", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self.session: ChatSession | None = None
        self.models: dict[str, str] = {}  # spec -> label, as the engine offers them
        self.conversation: chats.Conversation | None = None
        self.shown: list[list[tuple[str, str, str]]] = [[], []]  # per pane: (role, text, note)
        self.live: list[str] = []
        self.pieces: list[int] = []
        self.streaming = False
        self.last_text = ""
        self.started_at = 0.0
        self.dirty = False
        self.grounded = False
        """answers read passages retrieved from the project's corpus (ctrl+g)"""
        self.painted_at = 0.0
        """when the panes were last painted (a streaming reply repaints at least twice a second)"""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        with Grid(id="chat-controls"):  # 6 columns when they fit, else 3 (on_resize)
            with Vertical(classes="field"):
                yield Label("model")
                yield Select([], id="model-a", allow_blank=True, prompt="(starting ...)", compact=True)
            with Vertical(classes="field"):
                yield Label("beside it (ctrl+b)")
                yield Select([], id="model-b", allow_blank=True, prompt="none", compact=True)
            with Vertical(classes="field"):
                yield Label("system prompt")
                yield Input("", id="system", placeholder="optional", compact=True)
            for k in SAMPLING:
                with Vertical(classes="field"):
                    yield Label(k.label)
                    yield Input(k.default_text(), id=k.name, compact=True)
        with Horizontal(id="chat-body"):
            yield PlainTable(id="conversations", cursor_type="row")
            for pane in (0, 1):
                with Vertical(id=f"pane-{pane}", classes="chat-pane"):
                    yield Static("", id=f"head-{pane}", classes="pane-head")
                    yield TextPane(id=f"text-{pane}")
        yield Static("", id="chat-passages", classes="hint")
        yield Input(
            id="message", placeholder="message: enter sends · ctrl+x stops a reply · ctrl+n new chat", compact=True
        )
        yield Static("starting the chat engine ...", id="chat-status", classes="hint")
        yield Footer()

    def on_resize(self) -> None:
        controls = self.query_one("#chat-controls", Grid)
        columns = 6 if self.size.width >= 130 else 3
        if controls.styles.grid_size_columns != columns:
            controls.styles.grid_size_columns = columns

    def on_mount(self) -> None:
        project = projects.get(self.db, self.project_name)
        self.query_one("#title", Static).update(Text(f"Chat · {project.name}  ·  base model: {project.base_model}"))
        self.query_one("#conversations", DataTable).add_columns("id", "conversation")
        self.refresh_conversations()
        self.query_one("#pane-1").display = False
        self.set_interval(PAINT_EVERY_S, self.paint_if_dirty)
        self.query_one("#message", Input).focus()
        self.start_session()

    # --- the engine child -------------------------------------------------------------------

    @work(exclusive=True, group="chat-start")
    async def start_session(self) -> None:
        self.session = ChatSession(self.project_name, self.on_engine_event)
        try:
            offered = await self.session.start()
        except RuntimeError as exc:
            self.session = None
            self.status(f"the chat engine did not start: {exc}")
            self.notify(f"chat: {exc}", severity="error", timeout=15)
            return
        self.models = {str(m["spec"]): str(m["label"]) for m in offered}
        options = [(spec, spec) for spec in self.models]  # short names; the pane heads say more
        a, b = self.query_one("#model-a", Select), self.query_one("#model-b", Select)
        a.set_options(options)
        b.set_options(options)
        a.prompt = "choose a model"
        if not options:
            self.status("no GGUF model to chat with: export an expert (Train screen ctrl+e, or selfspec-tui export)")
            return
        experts = [s for s in self.models if not s.startswith("base")]
        if self.conversation is not None and self._offered(self.conversation.models):
            self._select(self.conversation.models)
        elif "base" in self.models and experts:
            self._select(["base", experts[0]])  # the point of the tool: the expert beside its base
        else:
            self._select([options[0][1]])
        self.warm_up()

    def warm_up(self) -> None:
        """Ask the engine to load the chosen models now, so the first reply does not wait for them."""
        specs = self.chosen()
        if self.session is not None and self.session.alive and specs and not self.streaming:
            self.status(f"loading {', '.join(specs)} ...")
            self.run_worker(self.session.load(specs), group="chat-load")

    def _offered(self, specs: list[str]) -> bool:
        return all(s in self.models for s in specs)

    def _select(self, specs: list[str]) -> None:
        self.query_one("#model-a", Select).value = specs[0]
        b = self.query_one("#model-b", Select)
        if len(specs) > 1:
            b.value = specs[1]
        else:
            b.clear()
        self._show_panes(len(specs))

    def chosen(self) -> list[str]:
        specs = []
        for sel in ("#model-a", "#model-b"):
            value = self.query_one(sel, Select).value
            if isinstance(value, str):
                specs.append(value)
        return specs

    def _show_panes(self, count: int) -> None:
        self.query_one("#pane-1").display = count > 1

    def on_select_changed(self, event: Select.Changed) -> None:
        if not self.streaming:
            self._show_panes(max(1, len(self.chosen())))
            self.paint()
            self.warm_up()

    async def on_engine_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Token):
            if event.pane < len(self.live):
                self.live[event.pane] += event.text
                self.pieces[event.pane] += 1
                self.dirty = True
        elif isinstance(event, ev.Loaded):
            if not self.streaming:
                ready = ", ".join(event.models)
                mode = " · grounded on the corpus" if self.grounded else ""
                self.status(f"ready: {ready} (loaded in {event.seconds:.1f}s){mode} · type and press enter")
        elif isinstance(event, ev.Conversation):
            self.conversation = chats.get(self.db, event.id)
            self.refresh_conversations()
        elif isinstance(event, ev.Turn):
            self.streaming = False
            replies = event.replies
            self.load(event.conversation)
            rates = " · ".join(
                f"{r['model']}: {r['tokens']} tokens, {r['tokens_per_s']} tok/s, first after {r['first_token_s']}s"
                for r in replies
            )
            stopped = any(r.get("stopped") for r in replies)
            self.status(("stopped · " if stopped else "") + rates)
            self.show_passages(event.passages, asked=self.grounded)
        elif isinstance(event, ev.TurnFailed):
            self.notify(event.error, severity="error", timeout=15)
            if event.dropped_conversation:
                self.conversation = None
            self._give_back_message()
            self.status(f"not sent: {event.error}")
        elif isinstance(event, ev.Exited):
            self.session = None
            self._give_back_message()
            self.notify(f"{event.error}; restarting it", severity="error", timeout=15)
            self.start_session()

    def _give_back_message(self) -> None:
        """A turn that failed stored nothing: its text goes back into the box to fix or resend."""
        if self.streaming:
            box = self.query_one("#message", Input)
            if not box.value:
                box.value = self.last_text
            self.streaming = False
        self._reload_shown()

    # --- sending ----------------------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "message":
            await self.send(event.value)
        elif event.input.id in {k.name for k in SAMPLING} | {"system"}:
            self.query_one("#message", Input).focus()

    async def send(self, text: str) -> None:
        if not text.strip():
            return
        if self.streaming:
            self.notify("a reply is streaming: ctrl+x stops it", severity="warning")
            return
        try:
            sampling = read_sampling({k.name: self.query_one(f"#{k.name}", Input).value for k in SAMPLING})
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        specs = self.chosen()
        if not specs:
            self.notify("choose a model first", severity="warning")
            return
        if self.session is None or not self.session.alive:
            self.start_session()
            self.notify("the chat engine is starting; send again in a moment", severity="warning")
            return
        system = self.query_one("#system", Input).value
        conv = self.conversation
        if conv is not None and (conv.models != specs or conv.system != system):
            self.notify("models or system prompt changed: this message starts a new conversation")
            conv = self.conversation = None
            self.shown = [[], []]
        request = ev.SendRequest(text, specs, conv.id if conv else None, system, grounded=self.grounded, **sampling)
        for pane in range(len(specs)):
            self.shown[pane].append(("user", text, ""))
        self.live, self.pieces = [""] * len(specs), [0] * len(specs)
        self.streaming, self.started_at = True, time.monotonic()
        self._show_panes(len(specs))
        self.query_one("#message", Input).value = ""
        self.last_text = text
        self.status("thinking ... (ctrl+x stops)")
        self.paint()
        try:
            await self.session.send(request)
        except (RuntimeError, OSError) as exc:
            self._give_back_message()
            self.notify(f"not sent: {exc}", severity="error")

    def action_stop(self) -> None:
        if self.streaming and self.session is not None:
            self.run_worker(self.session.stop(), group="chat-stop")
            self.status("stopping ...")

    def action_ground(self) -> None:
        self.grounded = not self.grounded
        self.status(
            "grounded: answers read the corpus passages most like your message (shown below them)"
            if self.grounded
            else "not grounded: the models answer from what they know"
        )

    def show_passages(self, passages: list[dict[str, Any]], asked: bool) -> None:
        self.query_one("#chat-passages", Static).update(escape(passages_text(passages, asked)))

    def action_side_by_side(self) -> None:
        if self.streaming:
            return
        b = self.query_one("#model-b", Select)
        if isinstance(b.value, str):
            b.clear()
        else:
            a = self.query_one("#model-a", Select).value
            others = [s for s in self.models if s != a]
            if not others:
                self.notify("only one model to chat with: export an expert to compare", severity="warning")
                return
            b.value = next((s for s in others if not s.startswith("base")), others[0])

    async def action_back(self) -> None:
        if isinstance(self.focused, Input) and self.focused.id != "message":
            self.query_one("#message", Input).focus()
            return
        self.app.pop_screen()

    async def on_unmount(self) -> None:
        if self.session is not None:
            await self.session.close()

    # --- painting ---------------------------------------------------------------------------

    def status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(Text(text))

    def paint_if_dirty(self) -> None:
        """Paint new pieces; while a reply streams, at least twice a second (the elapsed time moves
        while the prompt is read, before the first token)."""
        if self.dirty or (self.streaming and time.monotonic() - self.painted_at >= 0.5):
            self.paint()

    def paint(self) -> None:
        self.dirty = False
        self.painted_at = time.monotonic()
        specs = self.conversation.models if self.conversation and not self.streaming else self.chosen()
        elapsed = max(1e-6, time.monotonic() - self.started_at)
        for pane in (0, 1):
            spec = specs[pane] if pane < len(specs) else ""
            head = Text(self.models.get(spec, spec) or "-", style="bold")
            if self.streaming and pane < len(self.pieces):
                busy = f"{self.pieces[pane]} tok" if self.pieces[pane] else "reading the prompt"
                head.append(f"  ▸ {busy} · {elapsed:.1f}s", style="dim")
            self.query_one(f"#head-{pane}", Static).update(head)
            live = self.live[pane] if self.streaming and pane < len(self.live) else None
            self.query_one(f"#text-{pane}", TextPane).update(transcript(self.shown[pane], live), follow=True)
