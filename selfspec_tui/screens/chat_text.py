"""How a chat pane's transcript is drawn: the model's text is shown literally, never as markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text


def transcript(shown: list[tuple[str, str, str]], live: str | None) -> Text:
    """One pane's conversation as text: the user's turns, the model's replies and their numbers."""
    out = Text()
    for role, text, note in shown:
        if role == "user":
            out.append("you › ", style="bold cyan")
            out.append(text.strip() + "\n")
        else:
            out.append((text.strip() or "(no reply)") + "\n")
            if note:
                out.append(note + "\n", style="dim")
        out.append("\n")
    if live is not None:
        out.append(live.lstrip() or "…")
        out.append("▌", style="bold")
    return out


def passages_text(passages: list[dict[str, Any]], asked: bool) -> str:
    """The corpus passages a grounded turn read, a line each, for under the replies."""
    if not passages:
        return "no corpus passage scored above the floor: answered without one" if asked else ""
    lines = [f"passages read ({len(passages)}):"]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] {p['source']} · {p['score']:.2f} · {str(p['text'])[:150]}")
    return "\n".join(lines)
