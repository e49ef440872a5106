"""A scrollable pane of rich text whose updates repaint only the pane.

A Static with `height: auto` (or a scroll view whose content length changes) asks the whole
screen for a new layout on every update, which repaints everything on screen; this pane has a
fixed size, lays its text out itself and redraws only its own lines.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class TextPane(ScrollView, can_focus=False):
    DEFAULT_CSS = "TextPane { height: 1fr; overflow-y: scroll; }"  # a scrollbar that never toggles

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()
        self._lines: list[Strip] = []
        self._laid_out_at = -1

    @property
    def plain(self) -> str:
        return self._text.plain

    def update(self, markup: str | Text, follow: bool = False) -> None:
        """Show new text from its top, or from its end with `follow` (a streaming transcript)."""
        self._text = Text.from_markup(markup) if isinstance(markup, str) else markup
        self._laid_out_at = -1
        self._layout()
        y = max(0, len(self._lines) - self.size.height) if follow else 0
        self.scroll_to(y=y, animate=False, immediate=True)
        self.refresh()

    def _layout(self) -> None:
        # lay out at exactly the width the text is shown in: the pane's width less its scrollbar
        # (always shown, overflow-y: scroll); wider lines would lose their last character
        width = max(10, self.size.width - self.styles.scrollbar_size_vertical)
        if width == self._laid_out_at:
            return
        console = self.app.console
        options = console.options.update_width(width)
        lines = console.render_lines(self._text, options, pad=False)
        self._lines = [Strip(Segment.adjust_line_length(line, width)) for line in lines]
        self._laid_out_at = width
        size = Size(width, len(self._lines))
        if size != self.virtual_size:
            # Setting virtual_size normally asks the whole screen for a new layout (and so a full
            # repaint); the pane's own size does not change, so only its scrollbar is updated.
            self.set_reactive(TextPane.virtual_size, size)
            self._scroll_update(size)

    def on_resize(self, event: events.Resize) -> None:
        self._laid_out_at = -1
        self._layout()

    def render_line(self, y: int) -> Strip:
        self._layout()
        row = int(self.scroll_offset.y) + y
        if row < len(self._lines):
            return self._lines[row].apply_style(self.rich_style)
        return Strip.blank(self.size.width, self.rich_style)
