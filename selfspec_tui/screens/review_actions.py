"""Review's actions on several examples: marks (space), ratings (t), the bulk decisions (A, R) and
"more like this" (m).

A bulk key acts on the marked examples when there are any, else on every example the filter shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from engine.spec import events as ev
from engine.store import review
from selfspec_tui.engine_client import EngineRun
from selfspec_tui.screens import review_views as views
from selfspec_tui.screens.modals import AskModal, ConfirmModal, ExportModal, PathModal
from selfspec_tui.widgets.virtual_table import VirtualTable

SIMILAR_K = 20
"""examples "more like this" shows"""


class MarkActions:
    """Mixed into ReviewScreen (which provides db, project, session, marked and the helpers used)."""

    marked: set[int]
    similar: tuple[int, tuple[int, ...]] | None
    project_name: str
    db: Any
    project: Any
    session: str
    app: Any

    if TYPE_CHECKING:  # provided by ReviewScreen and Screen; declared here for the type checker only

        def query_one(self, *a: Any) -> Any: ...
        def notify(self, *a: Any, **k: Any) -> None: ...
        def _read_only(self) -> bool: ...
        def _guard(self, what: str, fn: Any) -> Any: ...
        def _show_counts(self) -> None: ...
        def _show_detail(self) -> None: ...
        def _apply(self, changed: dict[int, tuple[str, str]]) -> None: ...
        def reload(self, keep: int | None = None) -> None: ...

    def action_mark(self) -> None:
        """Space marks the highlighted example (again: unmarks it) and moves on."""
        if self._read_only():
            return
        table = self.query_one(VirtualTable)
        key = table.current
        if key is None:
            return
        self.marked ^= {key}
        table.forget({key})
        table.action_move(1)
        self._show_counts()

    def _targets(self) -> tuple[list[int], str]:
        """What a bulk key acts on: the marked examples, else every one shown."""
        if self.marked:
            return sorted(self.marked), f"{len(self.marked):,} marked"
        keys = list(self.query_one(VirtualTable).keys)
        return keys, f"all {len(keys):,} shown"

    def action_rate(self) -> None:
        if self._read_only():
            return
        keys, what = self._targets() if self.marked else ([k for k in [self.query_one(VirtualTable).current] if k], "")
        if not keys:
            return
        title = f"Rate {what} examples 1-5" if what else f"Rate example {keys[0]} 1-5"

        def given(text: str | None) -> None:
            if text is None:
                return
            if text not in ("", "1", "2", "3", "4", "5"):
                self.notify(f"a rating is 1 to 5 (empty clears it), not {text!r}", severity="warning")
                return
            rating = int(text) if text else None
            n = self._guard("rating", lambda: review.set_rating(self.db, self.project, keys, rating))
            if n is None:
                return
            self.query_one(VirtualTable).forget(set(keys))
            self._show_detail()
            self.notify(f"rated {n} example(s) {text}/5" if text else f"cleared the rating of {n} example(s)")

        self.app.push_screen(AskModal(title + " (empty clears)", "1-5"), given)

    def action_bulk(self, status: str) -> None:
        if self._read_only():
            return
        keys, what = self._targets()
        if not keys:
            return
        verb = "Accept" if status == "accepted" else "Reject"

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            done = self._guard(
                verb.lower(),
                lambda: review.set_status(self.db, self.project, review.Filter(ids=tuple(keys)), status, self.session),
            )
            if done is not None:
                self.marked.clear()
                self._apply(done.changed)
                self.query_one(VirtualTable).forget()
                self._show_detail()
                self.notify(f"{verb.lower()}ed {len(done.changed):,} example(s) (u undoes)")

        self.app.push_screen(ConfirmModal(f"{verb} {what} examples?"), confirmed)

    def action_similar(self) -> None:
        """The examples most like the highlighted one, by embedding cosine (the engine embeds them)."""
        if self._read_only():
            return
        key = self.query_one(VirtualTable).current
        if key is not None:
            self.notify(f"finding the examples most like #{key} ...")
            self.find_similar(key)

    @work(exclusive=True, group="similar")
    async def find_similar(self, key: int) -> None:
        found: list[int] = []

        def take(event: Any) -> None:
            if isinstance(event, ev.Result) and isinstance(event.data, dict) and "ids" in event.data:
                found.extend(int(i) for i in event.data["ids"])

        args = ["review", "similar", "--project", self.project_name, "--id", str(key), "-k", str(SIMILAR_K)]
        outcome = await EngineRun(*args).run(take)
        if outcome.code != 0:
            self.notify(outcome.message, severity="error", timeout=15)
            return
        self.similar = (key, tuple(found))
        self.reload()


class FileActions:
    """Review's dataset export (x) and import (i), run by the engine in the background."""

    project_name: str
    app: Any

    if TYPE_CHECKING:

        def notify(self, *a: Any, **k: Any) -> None: ...
        def reload(self, keep: int | None = None) -> None: ...

    def action_export(self) -> None:
        def chosen(opts: dict[str, Any] | None) -> None:
            if not opts:
                return
            self.run_dataset(views.export_args(self.project_name, opts))

        self.app.push_screen(ExportModal(), chosen)

    def action_import(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_dataset(["dataset", "import", path, "--project", self.project_name])

        self.app.push_screen(PathModal("Import examples (Alpaca, ShareGPT, OpenAI JSONL or Parquet)", "file"), chosen)

    @work(exclusive=True, group="dataset")
    async def run_dataset(self, args: list[str]) -> None:
        self.notify(f"{args[1]}ing ...")
        outcome = await EngineRun(*args).run(lambda event: None)
        summary = outcome.summary
        if outcome.code != 0 or not summary:
            self.notify(outcome.message, severity="error", timeout=20)
        elif args[1] == "export":
            self.notify(f"exported {summary.get('exported', 0)} examples to {summary.get('file')}", timeout=10)
        else:
            self.notify(
                f"imported {summary.get('added', 0)} examples ({summary.get('already_present', 0)} already there)"
            )
            self.reload()
