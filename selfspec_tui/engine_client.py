"""Talks to `python -m engine` children: one-shot runs that stream events, and a search session.

The front end never runs ML code itself: a crash or OOM in the child cannot take the UI down,
and cancelling is a real SIGTERM that the engine answers with an `interrupted` event. Every line
the child prints is turned into a typed event (engine.spec.events) before a screen sees it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.spec import events as ev

Event = ev.Event
OnEvent = Callable[[Event], Awaitable[None] | None]
STDERR_TAIL = 40


def engine_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", "--format", "json", *args]


def decode(raw: bytes) -> Event | None:
    """A typed event from one line of a child's stdout; None for stray library output."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return ev.parse(obj) if isinstance(obj, dict) else None


async def next_event(stream: asyncio.StreamReader | None, what: str) -> Event:
    """The next event from a child's stdout (stray library output is skipped)."""
    assert stream is not None
    while True:
        raw = await stream.readline()
        if not raw:
            return ev.Exited(f"the {what} process exited")
        event = decode(raw)
        if event is not None:
            return event


async def keep_tail(stream: asyncio.StreamReader | None, tail: list[str]) -> None:
    """Read a child's stderr to the end, keeping its last lines for error messages."""
    assert stream is not None
    async for raw in stream:
        tail.append(raw.decode("utf-8", "replace").rstrip())
        del tail[:-STDERR_TAIL]


@dataclass
class RunOutcome:
    code: int
    last: ev.Finished | ev.Failed | ev.Interrupted | None
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def finished(self) -> ev.Finished | None:
        return self.last if isinstance(self.last, ev.Finished) else None

    @property
    def interrupted(self) -> bool:
        return isinstance(self.last, ev.Interrupted)

    @property
    def summary(self) -> dict[str, Any]:
        return self.last.summary if isinstance(self.last, ev.Finished) else {}

    @property
    def message(self) -> str:
        if isinstance(self.last, ev.Failed):
            return self.last.error or "failed"
        if isinstance(self.last, ev.Interrupted):
            return "cancelled; run it again to resume"
        if self.code not in (0, 3) and not self.last:
            tail = " | ".join(self.stderr_tail[-3:])
            return f"engine exited with code {self.code}" + (f": {tail}" if tail else "")
        return "done"


class EngineRun:
    """One child process; `events()` drives it and hands every event to a callback."""

    def __init__(self, *args: str) -> None:
        self.argv = engine_argv(*args)
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr: list[str] = []
        self.cancelled = False

    async def run(self, on_event: OnEvent) -> RunOutcome:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        drain = asyncio.create_task(keep_tail(self.proc.stderr, self._stderr))
        last: Any = None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            event = decode(raw)
            if event is None:
                continue  # stray output from a library; events are whole JSON lines
            if isinstance(event, ev.ENDINGS):
                last = event
            maybe = on_event(event)
            if asyncio.iscoroutine(maybe):
                await maybe
        code = await self.proc.wait()
        await drain
        if last is None and self.cancelled and code != 0:
            # cancelled before the child could answer (e.g. still importing): the work it stored is kept
            last = ev.Interrupted(early=True)
        return RunOutcome(code, last, self._stderr[-STDERR_TAIL:])

    def cancel(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.cancelled = True
            self.proc.send_signal(signal.SIGTERM)


class SearchSession:
    """A long-lived `corpus serve` child: embedder and index stay loaded between queries."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *engine_argv("corpus", "serve", "--project", self.project),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        while True:
            event = await self._next_event()
            if isinstance(event, ev.Ready):
                return
            if isinstance(event, ev.Failed | ev.Exited):
                raise RuntimeError(event.error or "search engine did not start")

    async def _next_event(self) -> Event:
        assert self.proc is not None
        return await next_event(self.proc.stdout, "search")

    async def query(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """Top passages for `text`; raises RuntimeError with the engine's message on failure."""
        async with self._lock:
            if self.proc is None or self.proc.returncode is not None:
                await self.start()
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"query": text, "k": k}) + "\n").encode())
            await self.proc.stdin.drain()
            while True:
                event = await self._next_event()
                if isinstance(event, ev.Result):
                    return list(event.data["hits"])
                if isinstance(event, ev.Log) and event.level == "error":
                    raise RuntimeError(event.message)
                if isinstance(event, ev.Failed | ev.Exited):
                    raise RuntimeError(event.error)

    async def close(self) -> None:
        await end_child(self.proc)


async def end_child(proc: asyncio.subprocess.Process | None, grace_s: float = 3.0) -> None:
    """Close a serving child's stdin (its loop ends) and wait; kill it if it does not go."""
    if proc is None or proc.returncode is not None:
        return
    if proc.stdin:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()


class ChatSession:
    """A long-lived `chat --serve` child: models stay loaded between turns, replies stream back.

    Every event after `ready` goes to `on_event` (token, conversation, turn, turn_failed), and an
    `exited` event tells the screen that the child is gone (with the tail of its stderr).
    """

    def __init__(self, project: str, on_event: OnEvent) -> None:
        self.project = project
        self.on_event = on_event
        self.proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stderr: list[str] = []

    async def start(self) -> list[dict[str, str]]:
        """Start the child; returns the models it can chat with (spec and label each)."""
        self.proc = await asyncio.create_subprocess_exec(
            *engine_argv("chat", "--project", self.project, "--serve"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        asyncio.create_task(keep_tail(self.proc.stderr, self._stderr))
        while True:
            event = await self._next_event()
            if isinstance(event, ev.Ready):
                self._pump = asyncio.create_task(self._forward())
                return list(event.models)
            if isinstance(event, ev.Failed | ev.Exited):
                tail = " | ".join(self._stderr[-2:])
                raise RuntimeError(event.error or tail or "the chat engine did not start")

    async def _next_event(self) -> Event:
        assert self.proc is not None
        return await next_event(self.proc.stdout, "chat")

    async def _forward(self) -> None:
        while True:
            event = await self._next_event()
            if isinstance(event, ev.Exited):
                await asyncio.sleep(0.05)  # let stderr catch up
                tail = " | ".join(self._stderr[-2:])
                event = ev.Exited("the chat process exited" + (f": {tail}" if tail else ""))
            maybe = self.on_event(event)
            if asyncio.iscoroutine(maybe):
                await maybe
            if isinstance(event, ev.Exited):
                return

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _write(self, request: ev.LoadRequest | ev.SendRequest | ev.StopRequest) -> None:
        if not self.alive:
            raise RuntimeError("the chat process is not running")
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(ev.request_dict(request)) + "\n").encode())
        await self.proc.stdin.drain()

    async def send(self, request: ev.SendRequest) -> None:
        await self._write(request)

    async def stop(self) -> None:
        await self._write(ev.StopRequest())

    async def load(self, models: list[str]) -> None:
        await self._write(ev.LoadRequest(models))

    async def close(self) -> None:
        if self.alive and self.proc is not None:
            try:
                await self.stop()  # a reply in flight ends now rather than at max_tokens
            except (RuntimeError, OSError):
                pass
        await end_child(self.proc)
        if self._pump:
            self._pump.cancel()
