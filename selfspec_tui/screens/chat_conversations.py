"""Chat's stored conversations: the list (ctrl+o), opening one, starting a new one (ctrl+n)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable, Input

from engine.errors import UserError
from engine.store import chats, projects


class ConversationActions:
    """Mixed into ChatScreen (which provides the store, the panes and the model choice)."""

    project_name: str
    conversation: chats.Conversation | None
    shown: list[list[tuple[str, str, str]]]
    live: list[str]
    pieces: list[int]
    streaming: bool
    models: dict[str, str]
    db: Any

    if TYPE_CHECKING:  # provided by ChatScreen and Screen; declared here for the type checker only

        def query_one(self, *a: Any) -> Any: ...
        def notify(self, *a: Any, **k: Any) -> None: ...
        def _offered(self, specs: list[str]) -> bool: ...
        def _select(self, specs: list[str]) -> None: ...
        def _show_panes(self, count: int) -> None: ...
        def paint(self) -> None: ...
        def status(self, text: str) -> None: ...

    def refresh_conversations(self) -> None:
        table = self.query_one("#conversations", DataTable)
        table.clear()
        project = projects.get(self.db, self.project_name)
        for c in chats.list_for(self.db, project):
            cell = Text.assemble((c.title or "(empty)")[:40], "\n", (" | ".join(c.models), "dim"))
            table.add_row(str(c.id), cell, key=str(c.id), height=2)
        if self.conversation is not None:
            try:
                table.move_cursor(row=table.get_row_index(str(self.conversation.id)))
            except Exception:  # the row is gone (deleted elsewhere)
                pass

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None:
            return
        if self.streaming:
            self.notify("a reply is streaming: ctrl+x stops it first", severity="warning")
            return
        self.load(int(event.row_key.value))
        self.query_one("#message", Input).focus()

    def load(self, conversation_id: int) -> None:
        """Show a stored conversation and set the model choice and system prompt to its own."""
        try:
            self.conversation = chats.get(self.db, conversation_id)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        conv = self.conversation
        self.query_one("#system", Input).value = conv.system
        if self._offered(conv.models):
            self._select(conv.models)
        elif self.models:
            gone = ", ".join(s for s in conv.models if s not in self.models)
            self.notify(f"no longer available: {gone}; a new message starts a new conversation", severity="warning")
        self._reload_shown()
        self._show_panes(len(conv.models))
        self.refresh_conversations()

    def _reload_shown(self) -> None:
        self.shown = [[], []]
        self.live, self.pieces = [], []
        if self.conversation is not None:
            for m in chats.messages(self.db, self.conversation.id):
                if m.role == "user":
                    for pane in range(len(self.conversation.models)):
                        self.shown[pane].append(("user", m.content, ""))
                elif 0 <= m.pane < 2:
                    rate = max(0, m.tokens - 1) / m.seconds if m.seconds else 0.0
                    note = f"{m.tokens} tokens · {rate:.1f} tok/s" + (" · stopped" if m.stopped else "")
                    if "→" in m.model:  # a mixture's reply: the expert its router chose
                        note += f" · answered by {m.model.split('→', 1)[1]}"
                    self.shown[m.pane].append(("assistant", m.content, note))
        self.paint()

    def action_new(self) -> None:
        if self.streaming:
            self.notify("a reply is streaming: ctrl+x stops it first", severity="warning")
            return
        self.conversation = None
        self.shown, self.live, self.pieces = [[], []], [], []
        self.query_one("#conversations", DataTable).move_cursor(row=0)
        self.paint()
        self.query_one("#message", Input).focus()
        self.status("new conversation: choose models and a system prompt, then type")

    def action_conversations(self) -> None:
        self.query_one("#conversations", DataTable).focus()
