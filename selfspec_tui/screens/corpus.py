"""The domain corpus: documents, imports with live progress, and a search preview."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from engine.store import corpus, projects
from selfspec_tui.engine_client import EngineRun, SearchSession
from selfspec_tui.screens.base import AppScreen
from selfspec_tui.screens.keys import TableKeys
from selfspec_tui.screens.modals import PathModal
from selfspec_tui.widgets.plain_table import PlainTable
from selfspec_tui.widgets.run_progress import RunProgress


class CorpusScreen(TableKeys, AppScreen):
    BINDINGS = [
        Binding("i", "import", "Import"),
        Binding("slash", "search", "Search"),
        Binding("x", "cancel", "Cancel import"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.project_name = name
        self._run: EngineRun | None = None
        self._search: SearchSession | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", classes="screen-title", markup=False)
        yield PlainTable(id="documents", cursor_type="row", zebra_stripes=True)
        yield RunProgress(id="progress")
        yield Input(placeholder="search the corpus (/ to focus, enter to search)", id="query")
        yield PlainTable(id="hits", cursor_type="row")
        yield Static("", id="passage", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#documents", DataTable).add_columns("id", "title", "chunks", "chars", "source")
        self.query_one("#hits", DataTable).add_columns("score", "source", "passage")
        self.refresh_documents()

    async def on_unmount(self) -> None:
        if self._search:
            await self._search.close()

    def refresh_documents(self) -> None:
        db = self.db
        project = projects.get(db, self.project_name)
        docs = corpus.list_documents(db, project)
        table = self.query_one("#documents", DataTable)
        table.clear()
        for d in docs:
            table.add_row(str(d.id), d.title[:50], str(d.n_chunks), str(d.chars), d.source, key=str(d.id))
        s = projects.summary(db, project)
        self.query_one("#title", Static).update(
            f"Corpus of {self.project_name}: {s['documents']} documents, {s['chunks']} chunks, {s['embedded']} embedded"
        )

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#documents", DataTable).focus()
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        self.query_one("#query", Input).focus()

    def action_cancel(self) -> None:
        if self._run:
            self._run.cancel()
            self.notify("cancelling the import...")

    def action_import(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_import(str(Path(path).expanduser()))

        self.app.push_screen(PathModal("Import .txt, .md or .jsonl files or a folder"), chosen)

    @work(exclusive=True, group="corpus-import")
    async def run_import(self, path: str) -> None:
        progress = self.query_one(RunProgress)
        progress.begin(f"importing {path}")
        self._run = EngineRun("corpus", "import", path, "--project", self.project_name)
        try:
            outcome = await self._run.run(progress.show_event)
        finally:
            self._run = None
        progress.end(outcome.message)
        if outcome.code in (0, 3) and outcome.finished:
            s = outcome.summary
            msg = f"imported {s.get('documents', 0)} documents, {s.get('chunks', 0)} chunks"
            skipped = s.get("problems") or []
            if skipped:
                msg += f"; skipped {len(skipped)}: " + "; ".join(skipped[:3])
            self.notify(msg, severity="warning" if skipped else "information", timeout=12)
            if self._search:  # the index changed; the next query reloads it
                await self._search.close()
                self._search = None
        else:
            self.notify(outcome.message, severity="error", timeout=15)
        self.refresh_documents()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "query" and event.value.strip():
            self.run_search(event.value.strip())

    @work(exclusive=True, group="corpus-search")
    async def run_search(self, query: str) -> None:
        table = self.query_one("#hits", DataTable)
        self.query_one("#passage", Static).update("searching...")
        if self._search is None:
            self._search = SearchSession(self.project_name)
        try:
            hits = await self._search.query(query, 5)
        except RuntimeError as exc:
            self.query_one("#passage", Static).update("")
            self.notify(f"search failed: {exc}", severity="error")
            return
        table.clear()
        self._hits = {str(h["chunk_id"]): h for h in hits}
        for h in hits:
            source = Path(str(h["source"]).split(":")[0]).name
            table.add_row(f"{h['score']:.3f}", source, " ".join(h["text"].split())[:70], key=str(h["chunk_id"]))
        self.query_one("#passage", Static).update("" if hits else "no passages found")
        if hits:  # the focus stays where it is: letters typed next must not fire one-key actions
            self._show_hit(str(hits[0]["chunk_id"]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "hits" and event.row_key is not None:
            self._show_hit(str(event.row_key.value))

    def _show_hit(self, key: str) -> None:
        hit = getattr(self, "_hits", {}).get(key)
        if hit:
            self.query_one("#passage", Static).update(
                f"[b]{hit['score']:.3f}[/b]  {escape(str(hit['source']))} (chunk {hit['ordinal']})\n"
                + escape(hit["text"])
            )
