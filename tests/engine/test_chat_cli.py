"""`chat -q`: one question to the real embedded default from the command line, stored like any chat."""

from __future__ import annotations

import pytest

from engine.store import chats
from tests.helpers import run_engine

pytestmark = pytest.mark.slow


def test_one_shot_question_prints_the_reply_and_stores_the_turn(db, project) -> None:
    r = run_engine(
        "chat", "--project", "test", "-q", "Name one organ of the body.", "--max-tokens", "12",
        "--temperature", "0", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("base> ") and len(r.stdout.strip()) > len("base>")
    assert "tok/s" in r.stderr and "you>" not in r.stdout and "Traceback" not in r.stderr
    [conv] = chats.list_for(db, project)
    roles = [m.role for m in chats.messages(db, conv.id)]
    assert roles == ["user", "assistant"] and conv.title.startswith("Name one organ")
    empty = run_engine("chat", "--project", "test", "-q", "  ")
    assert empty.returncode == 2 and "question is empty" in empty.stderr
    assert len(chats.list_for(db, project)) == 1  # nothing stored for a refused question


def test_grounded_question_reads_the_corpus_and_shows_its_passages(db, project) -> None:
    from tests.helpers import ROOT

    refused = run_engine("chat", "--project", "test", "-q", "What treats anaphylaxis?", "--grounded")
    assert refused.returncode == 2 and "needs a corpus" in refused.stderr
    assert (
        run_engine("corpus", "import", str(ROOT / "seeds" / "corpus" / "biomedicine"), "--project", "test").returncode
        == 0
    )
    r = run_engine(
        "chat", "--project", "test", "-q", "What is the first-line treatment for anaphylaxis?", "--grounded",
        "--max-tokens", "16", "--temperature", "0", timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    shown = r.stdout.split("\n  [1] ", 1)
    assert r.stdout.startswith("base> ") and len(shown) == 2 and "(score " in shown[1]  # passages under the reply
    [conv] = chats.list_for(db, project)
    assert chats.messages(db, conv.id)[0].content == "What is the first-line treatment for anaphylaxis?"  # as typed
