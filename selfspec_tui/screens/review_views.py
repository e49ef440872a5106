"""How Review draws an example or a dropped task: table cells and the detail pane's text."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from sqlite_utils import Database

from engine.store import corpus, review
from engine.store.records import Candidate, Example
from selfspec_tui.widgets.virtual_table import Cells, Column

COLUMNS = [
    Column("mark", "✓", 2),
    Column("id", "id", 7),
    Column("status", "status", 9),
    Column("type", "task type", 12),
    Column("instruction", "instruction", 0),
    Column("reason", "flag / reason", 16),
    Column("rating", "★", 2),
    Column("length", "chars", 6),
    Column("run", "run", 4),
]

STATUS_STYLE = {"pending": "yellow", "accepted": "green", "rejected": "red", "edited": "cyan"}


def example_cells(v: review.RowView, marked: bool = False) -> Cells:
    return [
        ("✓" if marked else "", "bold"),
        (str(v.id), "dim"),
        (v.status, STATUS_STYLE.get(v.status, "")),
        (v.task_type, ""),
        (v.preview, ""),
        (v.flag, "magenta" if v.flag else ""),
        (str(v.rating) if v.rating else "", "yellow"),
        (str(v.chars), "dim"),
        (str(v.generation_id) if v.generation_id else "imp", "dim"),
    ]


def dropped_cells(c: Candidate) -> Cells:
    reason = c.reason + (f": {c.detail}" if c.detail else "")
    return [
        ("", ""),
        (f"c{c.id}", "dim"),
        ("dropped", "bright_black"),
        (c.task_type, ""),
        (c.instruction, "bright_black"),
        (reason, "magenta"),
        ("", ""),
        (str(len(c.instruction) + len(c.input)), "dim"),
        (str(c.generation_id), "dim"),
    ]


def dropped_detail(c: Candidate) -> str:
    return (
        f"[b]task c{c.id}[/b]  [bright_black]dropped by the filters[/]  run {c.generation_id}"
        f"  prompt {c.prompt_idx}.{c.item_idx}\n\n[b]Reason[/b]\n[magenta]{escape(c.reason)}[/]"
        + (f" {escape(c.detail)}" if c.detail else "")
        + f"\n\n[b]Instruction[/b]\n{escape(c.instruction)}\n\n[b]Input[/b]\n"
        + (escape(c.input) if c.input else "[dim](none)[/dim]")
        + "\n\n[dim]Dropped tasks never got an answer, so there is nothing to accept here.[/dim]"
    )


def example_detail(db: Database, e: Example) -> str:
    """Head, instruction, input, response, the retrieved passages and, once edited, the original."""
    head = (
        f"[b]#{e.id}[/b]  [{STATUS_STYLE.get(e.status, '')}]{e.status}[/]  type {escape(e.task_type)}"
        + (f"  run {e.generation_id}" if e.generation_id else "  imported")
        + (f"  [magenta]flag: {escape(e.flag)}[/]" if e.flag else "")
        + (f"  [cyan]version {e.version} (original kept)[/]" if e.version else "")
        + (f"  [yellow]rated {e.rating}/5[/]" if e.rating else "")
    )
    parts = [
        head,
        f"[b]Instruction[/b]\n{escape(e.instruction)}",
        f"[b]Input[/b]\n{escape(e.input) if e.input else '[dim](none)[/dim]'}",
        f"[b]Response[/b]\n{escape(e.output)}",
    ]
    if e.passages:
        chunks = corpus.get_chunks(db, [int(p["chunk_id"]) for p in e.passages])
        lines = ["[b]Retrieved passages[/b]"]
        for i, p in enumerate(e.passages, 1):
            chunk = chunks.get(int(p["chunk_id"]))
            text = " ".join(chunk.text.split())[:400] if chunk else "(passage no longer in the corpus)"
            lines.append(f"{i}. score {float(p['score']):.3f}  [i]{escape(str(p.get('source', '')))}[/i]")
            lines.append(f"   {escape(text)}")
        parts.append("\n".join(lines))
    if e.version:
        first = review.versions(db, e.id)[0]
        parts.append("[b]Changes from the original (version 0)[/b]\n" + edit_diff(first, e))
    return "\n\n".join(parts)


def edit_diff(before: Any, after: Any) -> str:
    """What an edit changed, field by field, word by word: [red]-removed[/] [green]+added[/]."""
    import difflib

    out = []
    for name in ("instruction", "input", "output", "task_type"):
        old, new = str(getattr(before, name)), str(getattr(after, name))
        if old == new:
            continue
        a, b = old.split(), new.split()
        pieces = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "equal":
                pieces.append(escape(" ".join(a[i1:i2])))
                continue
            if i2 > i1:
                pieces.append(f"[red strike]-{escape(' '.join(a[i1:i2]))}[/]")
            if j2 > j1:
                pieces.append(f"[green]+{escape(' '.join(b[j1:j2]))}[/]")
        out.append(f"[i]{name}[/i]: " + " ".join(pieces))
    return "\n".join(out) if out else "[dim](the text is the same; only the status changed)[/dim]"


def export_args(project: str, opts: dict[str, Any]) -> list[str]:
    """The `dataset export` command line for the export dialog's choices."""
    args = ["dataset", "export", "--project", project, "--format", opts["format"]]
    if opts["out"]:
        args += ["--out", opts["out"]]
    if opts["system"]:
        args += ["--system", opts["system"]]
    if opts["include_pending"]:
        args.append("--include-pending")
    return args


def counts_line(counts: dict[str, int], dropped_total: int, shown: int) -> str:
    """Examples per status, the training set, what the filters dropped and what is shown."""
    parts = [f"[{STATUS_STYLE[s]}]{s}[/] {counts.get(s, 0):,}" for s in review.STATUSES]
    training = counts.get("accepted", 0) + counts.get("edited", 0)
    return (
        "   ".join(parts)
        + f"    │ training set {training:,}    │ dropped by filters {dropped_total:,}"
        + f"    │ shown {shown:,}"
    )
