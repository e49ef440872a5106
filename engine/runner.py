"""Runs one command: signals, run records, and the mapping of outcomes to events and exit codes."""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.events import Sink
from engine.spec import events as ev
from engine.stages.context import Context, Interrupted
from engine.store import open_store, projects, runs
from engine.store.db import StoreError, explain

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
log = logging.getLogger("engine")


STOP_GRACE_S = float(os.environ.get("SELFSPEC_STOP_GRACE_S", "4"))  # to stop at a safe point
HARD_STOP_S = 4.0  # then to unwind from KeyboardInterrupt before the process exits at once


class _Stopper:
    """Turns SIGTERM / Ctrl-C into a stop that happens within seconds, whatever the stage is doing.

    1. The signal sets the stop flag; stages check it between units of work and stop cleanly.
    2. A watchdog thread, woken through signal.set_wakeup_fd (so even while the main thread sits
       in C code: model loading, a long matmul), waits STOP_GRACE_S; if the flag is still set and
       the command has not ended, it raises KeyboardInterrupt in the main thread, which the
       runner reports as interrupted. Everything written is transactional or renamed into place,
       so this is as safe as kill -9 and the same command resumes.
    3. If even that has not ended the command HARD_STOP_S later, the process exits at once with
       130 (the run is marked interrupted by the next command, as after kill -9).
    A second Ctrl-C stops at once.
    """

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag
        self.done = threading.Event()
        self._escalating = False
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            r, w = os.pipe()
            os.set_blocking(w, False)
            self._previous_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):  # not the main thread (tests): the Python handler still works
            return
        self._pipe = (r, w)
        threading.Thread(target=self._watch, args=(r,), daemon=True, name="stop-watchdog").start()

    def close(self) -> None:
        """The command ended: stop watching (matters when commands run in-process, as in tests)."""
        self.done.set()
        if self._pipe is None:
            return
        try:
            signal.set_wakeup_fd(self._previous_fd)
        except (ValueError, OSError):
            pass
        r, w = self._pipe
        self._pipe = None
        os.close(w)  # the watchdog's read returns EOF and it ends; it closes r

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.flag.set()

    def _watch(self, fd: int) -> None:
        try:
            self._watch_loop(fd)
        finally:
            os.close(fd)

    def _watch_loop(self, fd: int) -> None:
        while not self.done.is_set():
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            if not ({signal.SIGTERM, signal.SIGINT} & set(data)):
                continue
            self.flag.set()
            if not self._escalating:
                self._escalating = True
                threading.Thread(target=self._escalate, daemon=True, name="stop-escalate").start()

    def _escalate(self) -> None:
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if self.done.is_set():
                return
            if not self.flag.is_set():  # the stage took the stop and went on (chat: one reply stopped)
                self._escalating = False
                return
            time.sleep(0.05)
        log.warning("stop not taken within %.1f s: interrupting", STOP_GRACE_S)
        _thread.interrupt_main()
        if self.done.wait(HARD_STOP_S):
            return
        log.warning("still running %.1f s after the interrupt: exiting now", HARD_STOP_S)
        try:
            if os.getpgrp() == os.getpid():  # our own process group: take helpers with us
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.killpg(0, signal.SIGTERM)
        except OSError:
            pass
        os._exit(EXIT_INTERRUPTED)


def execute(
    emit: Sink,
    stage: str,
    body: Callable[[Context], dict[str, Any] | None],
    project_name: str | None = None,
    config: dict[str, Any] | None = None,
    record: bool = True,
) -> int:
    """Run `body` inside a Context; report started/finished/failed/interrupted; return exit code."""
    flag = threading.Event()
    stopper = _Stopper(flag)
    stopper.install()
    paths.private_umask()
    try:
        return _execute(emit, stage, body, project_name, config, record, flag)
    finally:
        stopper.close()


def _execute(
    emit: Sink,
    stage: str,
    body: Callable[[Context], dict[str, Any] | None],
    project_name: str | None,
    config: dict[str, Any] | None,
    record: bool,
    flag: threading.Event,
) -> int:
    run_id = None
    db: Any = None  # None only for doctor on a store that cannot be opened
    try:
        try:
            db = open_store(check=stage != "doctor")
        except StoreError:
            if stage != "doctor":
                raise
            db = None  # doctor still runs: it reports what is wrong with the store
        if db is not None:
            runs.reap_dead(db)
        project = projects.get(db, project_name) if project_name is not None else None
        ctx = Context(db=db, emit=emit, project=project, threads=_threads(), stop_flag=flag)
        if record:
            run_id = runs.start(db, project.id if project else None, stage, config or {})
            ctx.run_id = run_id
            ctx.emit = _recording_progress(emit, db, run_id)
        emit(ev.Started(stage, run_id, os.getpid(), project_name))
        summary = body(ctx) or {}
        partial = bool(summary.get("problems"))
        if run_id:
            runs.end(db, run_id, "finished", _counts(summary))
        emit(ev.Finished(stage, run_id, summary))
        return EXIT_PARTIAL if partial else EXIT_OK
    except (Interrupted, KeyboardInterrupt):
        _end_quietly(db, run_id, "stopped on request", "interrupted")
        emit(ev.Interrupted(stage, run_id))
        return EXIT_INTERRUPTED
    except UserError as exc:
        _end_quietly(db, run_id, str(exc))
        kind: ev.ErrorKind = "store" if isinstance(exc, StoreError) else "input"
        emit(ev.Failed(str(exc), stage, run_id, kind))
        return EXIT_USER
    except sqlite3.Error as exc:  # the store itself: locked, read-only, damaged, disk full
        err = explain(exc)
        _end_quietly(db, run_id, str(err))
        emit(ev.Failed(str(err), stage, run_id, "store"))
        return EXIT_USER
    except RecursionError:
        message = "the input is nested too deeply to read (more than about 900 levels of lists or objects)"
        _end_quietly(db, run_id, message)
        emit(ev.Failed(message, stage, run_id, "input"))
        return EXIT_USER
    except OSError as exc:  # disk full, permissions, vanished files: the user can act on these
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        message = f"file system error{where}: {exc.strerror or exc}"
        _end_quietly(db, run_id, message)
        emit(ev.Failed(message, stage, run_id, "io"))
        return EXIT_USER
    except Exception as exc:  # a bug: full traceback to the log file, one line to the user
        where = _write_crash_log(stage)
        _end_quietly(db, run_id, f"{type(exc).__name__}: {exc}")
        emit(ev.Failed(f"internal error {type(exc).__name__}: {exc} (details in {where})", stage, run_id, "internal"))
        return EXIT_BUG


PROGRESS_EVERY_S = 2.0
"""how often a running stage's latest progress is written to its run row (for other processes)"""


def _recording_progress(emit: Sink, db: Any, run_id: int) -> Sink:
    """The stage's sink, also keeping the run row's `counts` at the latest progress (at most every
    PROGRESS_EVERY_S), so a TUI started later, or another one, can show how far the run is."""
    last = [0.0]

    def sink(event: ev.Event) -> None:
        emit(event)
        if not isinstance(event, ev.Progress) or time.monotonic() - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = time.monotonic()
        live = {"stage": event.stage, "done": event.done, "total": event.total, "unit": event.unit}
        live |= {"rate": event.rate, "eta_s": event.eta_s, "elapsed_s": round(event.elapsed_s, 1)}
        try:
            runs.update_counts(db, run_id, {"progress": live})
        except Exception:  # a busy or failing store must not stop the work; the end is recorded anyway
            log.debug("could not record progress of run %s", run_id, exc_info=True)

    return sink


def _end_quietly(db: Any, run_id: int | None, error: str, status: str = "failed") -> None:
    """Record how the run ended, unless the store itself is what failed (then the next command
    finds the run's process gone and marks it interrupted)."""
    if db is None or not run_id:
        return
    try:
        runs.end(db, run_id, status, error=error)
    except Exception:
        log.warning("could not record the end of run %s", run_id, exc_info=True)


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}


def _threads() -> int:
    env = os.environ.get("SELFSPEC_THREADS")
    if env and env.isdigit():
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _write_crash_log(stage: str) -> str:
    path = paths.home() / "logs" / "engine-errors.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {stage} (pid {os.getpid()})\n{traceback.format_exc()}\n")
    except OSError:
        return "stderr"
    return str(path)
