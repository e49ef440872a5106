"""A table over any number of rows that renders only what is on screen.

The table holds the ordered row keys (ints) and asks a loader for the cells of the rows it is
about to draw, a screenful at a time, caching them. Changing one row means dropping that row
from the cache and repainting: nothing else is reloaded. Textual's DataTable builds every row
up front, which takes seconds at 50,000 rows; this stays at the cost of one screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cells = list[tuple[str, str]]  # (text, rich style) per column
Loader = Callable[[list[int]], dict[int, Cells]]
CACHE_LIMIT = 4_000
PREFETCH = 60


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: takes the remaining width


class VirtualTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; }
    VirtualTable > .virtual-table--header { text-style: bold; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $accent 40%; }
    VirtualTable:focus > .virtual-table--cursor { background: $accent; }
    """
    COMPONENT_CLASSES = {"virtual-table--header", "virtual-table--cursor"}
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]
    cursor: reactive[int] = reactive(0, always_update=True)

    class Highlighted(Message):
        def __init__(self, table: VirtualTable, key: int | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

    class HeaderClicked(Message):
        def __init__(self, column: Column) -> None:
            super().__init__()
            self.column = column

    def __init__(self, columns: list[Column], loader: Loader, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.loader = loader
        self.keys: list[int] = []
        self._row_of: dict[int, int] = {}
        self._cache: dict[int, Cells] = {}
        self.sort_mark: dict[str, str] = {}

    # ---- data ---------------------------------------------------------------------------------

    def set_keys(self, keys: list[int], keep: int | None = None) -> None:
        """Show these rows (in this order); the cursor stays on `keep` if it is still shown."""
        self.keys = keys
        self._row_of = {k: i for i, k in enumerate(keys)}
        self._cache.clear()
        index = 0
        if keep is not None:
            try:
                index = keys.index(keep)
            except ValueError:
                index = min(self.cursor, max(len(keys) - 1, 0))
        self.virtual_size = Size(self.size.width, len(keys) + 1)
        self.cursor = index
        self.refresh()

    def forget(self, keys: list[int] | set[int] | None = None) -> None:
        """Drop cached cells (of these rows, or all) so they are loaded again when drawn."""
        if keys is None:
            self._cache.clear()
            self.refresh()
            return
        for k in keys:
            self._cache.pop(k, None)
            row = self._row_of.get(k)
            if row is not None:
                self.refresh_line(row + 1)

    def row_of(self, key: int) -> int | None:
        return self._row_of.get(key)

    @property
    def current(self) -> int | None:
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    def _cells(self, row: int) -> Cells:
        key = self.keys[row]
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > CACHE_LIMIT:
                self._cache.clear()
            start = max(0, int(self.scroll_offset.y) - 5)
            wanted = [k for k in self.keys[start : start + self.size.height + PREFETCH] if k not in self._cache]
            if key not in wanted:
                wanted.append(key)
            self._cache.update(self.loader(wanted))
            found = self._cache.setdefault(key, [("?", "")] * len(self.columns))
        return found

    # ---- drawing ------------------------------------------------------------------------------

    def _widths(self) -> list[int]:
        fixed = sum(c.width for c in self.columns if c.width) + len(self.columns)
        flex = max(10, self.size.width - fixed)
        return [c.width or flex for c in self.columns]

    def render_line(self, y: int) -> Strip:
        widths = self._widths()
        if y == 0:
            style = self.get_component_rich_style("virtual-table--header")
            cells = [(c.label + self.sort_mark.get(c.key, ""), "") for c in self.columns]
            return self._strip(cells, widths, style)
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self.keys):
            return Strip.blank(self.size.width, self.rich_style)
        base = self.get_component_rich_style("virtual-table--cursor") if row == self.cursor else self.rich_style
        return self._strip(self._cells(row), widths, base)

    def _strip(self, cells: Cells, widths: list[int], base: Style) -> Strip:
        segments = []
        for (text, style), width in zip(cells, widths):
            shown = set_cell_size(" ".join(text.split()), width)
            segments.append(Segment(shown + " ", base + Style.parse(style) if style else base))
        return Strip(segments).crop(0, self.size.width).extend_cell_length(self.size.width, base)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.keys) + 1)

    # ---- cursor -------------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.keys:
            self.post_message(self.Highlighted(self, None))
            return
        clamped = max(0, min(new, len(self.keys) - 1))
        if clamped != new:
            self.cursor = clamped
            return
        top = int(self.scroll_offset.y)
        visible = max(1, self.size.height - 1)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
            self.refresh()
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False, immediate=True)
            self.refresh()
        else:  # only the two lines whose highlight changed
            self.refresh_line(old + 1)
            self.refresh_line(new + 1)
        self.post_message(self.Highlighted(self, self.current))

    def action_move(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_page(self, direction: int) -> None:
        self.cursor = self.cursor + direction * max(1, self.size.height - 2)

    def action_jump(self, where: int) -> None:
        self.cursor = len(self.keys) - 1 if where < 0 else 0

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            x = 0
            for column, width in zip(self.columns, self._widths()):
                if x <= event.x < x + width + 1:
                    self.post_message(self.HeaderClicked(column))
                    return
                x += width + 1
            return
        row = int(self.scroll_offset.y) + event.y - 1
        if row < len(self.keys):
            self.cursor = row
