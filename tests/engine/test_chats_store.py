"""Stored conversations: whole turns, what each pane's model sees again, deletion."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import UserError
from engine.store import chats


def test_turns_are_stored_whole_and_history_skips_unanswered_ones(db, project) -> None:
    conv = chats.create(db, project, ["base", "x:q8_0"], "Be brief.", "")
    chats.add_turn(
        db,
        conv.id,
        "first?",
        [chats.Reply(0, "one", "base", 1, 0.1, False), chats.Reply(1, "", "x:q8_0", 0, 0.1, True)],
    )
    chats.add_turn(
        db,
        conv.id,
        "second?",
        [chats.Reply(0, "two", "base", 1, 0.1, False), chats.Reply(1, "deux", "x:q8_0", 1, 0.1, False)],
    )
    assert chats.get(db, conv.id).title == "first?"  # the first turn names an untitled conversation
    assert chats.history(db, conv.id, 0) == [
        {"role": "user", "content": "first?"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second?"},
        {"role": "assistant", "content": "two"},
    ]
    # pane 1 was stopped before its first token on turn one: that question is not shown to it again
    assert chats.history(db, conv.id, 1) == [
        {"role": "user", "content": "second?"},
        {"role": "assistant", "content": "deux"},
    ]
    msgs = chats.messages(db, conv.id)
    assert [(m.pane, m.stopped) for m in msgs] == [(-1, 0), (0, 0), (1, 1), (-1, 0), (0, 0), (1, 0)]
    chats.delete(db, conv.id)
    assert chats.messages(db, conv.id) == [] and chats.list_for(db, project) == []
    with pytest.raises(UserError, match="no conversation with id"):
        chats.get(db, conv.id)


def test_a_failed_turn_write_leaves_nothing_behind(db, project) -> None:
    conv = chats.create(db, project, ["base"], "", "t")
    bad = chats.Reply(0, "x", "base", 1, 0.1, False)
    broken = chats.Reply(0, None, "base", 1, 0.1, False)  # type: ignore[arg-type]  (NOT NULL content)
    with pytest.raises(sqlite3.IntegrityError):
        chats.add_turn(db, conv.id, "q", [bad, broken])
    assert chats.messages(db, conv.id) == []  # the user turn went with the failed reply
