"""The Chat screen through Pilot, with real llama.cpp on the embedded SmolLM2 GGUF.

The "expert" here is the embedded GGUF placed where an export would put it (the export itself is
tested in test_export.py): what this file checks is the screen and its engine child: streaming
into two panes, stop mid-reply, stored conversations reopened, bad settings and a dead child.
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Input

from engine.spec import events as ev
from engine.store import chats, projects
from selfspec_tui.app import SelfSpecApp
from selfspec_tui.screens.chat import ChatScreen, read_sampling, transcript
from tests.helpers import notes, talk_project, wait_for


def test_sampling_fields_are_checked_by_name() -> None:
    assert read_sampling({"temperature": "0", "top_p": "", "max_tokens": "12"}) == {
        "temperature": 0.0,
        "top_p": 0.95,
        "max_tokens": 12,
    }
    with pytest.raises(ValueError, match="max tokens: 'lots'"):
        read_sampling({"max_tokens": "lots"})
    with pytest.raises(ValueError, match="temperature"):
        read_sampling({"temperature": "hot"})


def test_transcript_keeps_model_text_literal() -> None:
    text = transcript([("user", "hi [bold]", ""), ("assistant", "[red]x[/]", "3 tokens")], "more")
    assert text.plain == "you › hi [bold]\n\n[red]x[/]\n3 tokens\n\nmore▌"


async def _open_chat(pilot, app) -> ChatScreen:
    await pilot.press("h")
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    await wait_for(pilot, lambda: bool(screen.models), 60)
    return screen


@pytest.mark.slow
async def test_side_by_side_stream_stop_and_reopen(db) -> None:
    talk_project(db, "chat")
    app = SelfSpecApp(project="talk")
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await _open_chat(pilot, app)
        # the expert beside its base is the default choice, and both are loaded before the first message
        assert screen.chosen() == ["base", "twin:q8_0"] and screen.query_one("#pane-1").display
        await wait_for(pilot, lambda: "ready:" in str(screen.query_one("#chat-status").render()), 60)
        screen.query_one("#temperature", Input).value = "0"
        screen.query_one("#max_tokens", Input).value = "12"
        screen.query_one("#message", Input).focus()
        await pilot.press(*"What is sepsis?", "enter")
        await wait_for(pilot, lambda: not screen.streaming, 120)
        [conv] = chats.list_for(db, projects.get(db, "talk"))
        msgs = chats.messages(db, conv.id)
        assert [(m.pane, m.role) for m in msgs] == [(-1, "user"), (0, "assistant"), (1, "assistant")]
        assert msgs[1].content and msgs[2].content and msgs[1].model == "base" and msgs[2].model == "twin:q8_0"
        assert all(0 < m.tokens <= 12 and not m.stopped for m in msgs[1:])
        assert msgs[1].content.split()[0] in screen.query_one("#text-0").plain  # type: ignore[attr-defined]
        assert "tok/s" in str(screen.query_one("#chat-status").render())

        # a long reply, stopped as soon as it streams: both panes end early and say so
        screen.query_one("#temperature", Input).value = "1.0"
        screen.query_one("#max_tokens", Input).value = "400"
        await pilot.press(*"Tell me everything about it.", "enter")
        await wait_for(pilot, lambda: screen.streaming and sum(screen.pieces) >= 2, 60)
        assert "▌" in screen.query_one("#text-0").plain  # type: ignore[attr-defined]
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: not screen.streaming, 60)
        replies = [m for m in chats.messages(db, conv.id) if m.role == "assistant"][2:]
        assert len(replies) == 2 and all(r.stopped and r.tokens < 400 for r in replies)
        assert "stopped" in str(screen.query_one("#chat-status").render())

        # a new single-model chat, then the first conversation reopened from the list
        await pilot.press("ctrl+n", "ctrl+b")
        assert screen.chosen() == ["base"] and not screen.query_one("#pane-1").display
        screen.query_one("#system", Input).value = "Answer in one word."
        screen.query_one("#max_tokens", Input).value = "4"
        screen.query_one("#message", Input).focus()
        await pilot.press(*"Hello", "enter")
        await wait_for(pilot, lambda: not screen.streaming, 60)
        convs = chats.list_for(db, projects.get(db, "talk"))
        assert len(convs) == 2 and convs[0].models == ["base"] and convs[0].system == "Answer in one word."
        table = screen.query_one("#conversations", DataTable)
        assert table.row_count == 2
        await pilot.press("ctrl+o")
        table.move_cursor(row=table.get_row_index(str(conv.id)))
        await pilot.press("enter")
        assert screen.conversation is not None and screen.conversation.id == conv.id
        assert screen.chosen() == ["base", "twin:q8_0"] and screen.query_one("#system", Input).value == ""
        assert "Tell me everything about it." in screen.query_one("#text-1").plain  # type: ignore[attr-defined]
        assert "stopped" in screen.query_one("#text-1").plain  # type: ignore[attr-defined]
        # a third turn continues the reopened conversation (no new one)
        screen.query_one("#message", Input).focus()
        await pilot.press(*"Thanks", "enter")
        await wait_for(pilot, lambda: not screen.streaming, 60)
        assert len(chats.list_for(db, projects.get(db, "talk"))) == 2
        assert len(chats.messages(db, conv.id)) == 9

        # bad settings never reach the engine; the screen says which field
        screen.query_one("#top_p", Input).value = "much"
        await pilot.press(*"again", "enter")
        assert any("top-p: 'much'" in n for n in notes(app)) and not screen.streaming
        screen.query_one("#top_p", Input).value = "1.5"  # a number, but out of range: the engine refuses it
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("top_p: 1.5 must be" in n for n in notes(app)), 30)
        assert len(chats.messages(db, conv.id)) == 9  # nothing stored for a refused turn
        assert screen.query_one("#message", Input).value == "again"  # given back to fix and resend

        # the engine child dies mid-reply: the screen says so, restarts it, and the turn can be sent again
        screen.query_one("#top_p", Input).value = "0.9"
        screen.query_one("#max_tokens", Input).value = "400"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.streaming and sum(screen.pieces) >= 1, 60)
        old = screen.session
        assert old is not None and old.proc is not None
        old.proc.kill()
        await wait_for(pilot, lambda: any("chat process exited" in n for n in notes(app)), 30)
        await wait_for(pilot, lambda: screen.session is not old and bool(screen.session and screen.session.alive), 60)
        assert not screen.streaming and screen.query_one("#message", Input).value == "again"
        assert len(chats.messages(db, conv.id)) == 9  # the killed turn left nothing half-written
        screen.query_one("#max_tokens", Input).value = "3"
        await wait_for(pilot, lambda: "ready:" in str(screen.query_one("#chat-status").render()), 60)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(chats.messages(db, conv.id)) == 12, 60)
        proc = screen.session.proc if screen.session else None
        await pilot.press("escape")
        assert not isinstance(app.screen, ChatScreen)
        await wait_for(pilot, lambda: proc is not None and proc.returncode is not None, 30)  # child closed


@pytest.mark.slow
async def test_grounded_chat_shows_the_passages_it_read(db) -> None:
    from tests.helpers import ROOT, run_engine

    talk_project(db, "chat")
    corpus = ROOT / "seeds" / "corpus" / "biomedicine"
    assert run_engine("corpus", "import", str(corpus), "--project", "talk", timeout=300).returncode == 0
    app = SelfSpecApp(project="talk")
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await _open_chat(pilot, app)
        await pilot.press("ctrl+b")  # one model is enough here
        # the loads reply in order: the first one (both models) may report after ctrl+b
        await wait_for(pilot, lambda: str(screen.query_one("#chat-status").render()).startswith("ready: base ("), 60)
        await pilot.press("ctrl+g")
        assert screen.grounded and "grounded:" in str(screen.query_one("#chat-status").render())
        await screen.on_engine_event(ev.Loaded(["base"], 0.1))  # a later load's line keeps the mode in view
        assert "grounded on the corpus" in str(screen.query_one("#chat-status").render())
        screen.query_one("#temperature", Input).value = "0"
        screen.query_one("#max_tokens", Input).value = "12"
        screen.query_one("#message", Input).focus()
        await pilot.press(*"What is the first-line treatment for anaphylaxis?", "enter")
        await wait_for(pilot, lambda: not screen.streaming, 120)
        shown = str(screen.query_one("#chat-passages").render())
        assert shown.startswith("passages read (") and "[1] " in shown and ".md" in shown
        [conv] = chats.list_for(db, projects.get(db, "talk"))
        assert chats.messages(db, conv.id)[0].content == "What is the first-line treatment for anaphylaxis?"
        # before the first token nothing streams in, yet the clock the pane shows still moves
        screen.streaming, screen.pieces, screen.live, screen.dirty = True, [0], [""], False
        screen.started_at, screen.painted_at = time.monotonic() - 3, time.monotonic() - 1
        screen.paint_if_dirty()
        assert "reading the prompt · 3." in str(screen.query_one("#head-0").render())
        screen.streaming = False


@pytest.mark.slow
async def test_a_project_with_no_gguf_says_how_to_get_one(db, tmp_path) -> None:
    from engine.stages.models import register
    from tests.helpers import build_tiny_llama

    register(db, build_tiny_llama(tmp_path / "hf-tiny"), "hf-tiny")
    projects.create(db, "nogguf", "biomedicine", "hf-tiny", {})
    app = SelfSpecApp(project="nogguf")
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_for(pilot, lambda: "export an expert" in str(screen.query_one("#chat-status").render()), 60)
        await pilot.press(*"hi", "enter")
        assert any("choose a model" in n for n in notes(app))
        assert not chats.list_for(db, projects.get(db, "nogguf"))
