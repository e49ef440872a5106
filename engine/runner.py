"""Runs one command: signals, run records, and the mapping of outcomes to events and exit codes."""

from __future__ import annotations

import logging
import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.events import Sink
from engine.stages.context import Context, Interrupted
from engine.store import open_store, projects, runs

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
log = logging.getLogger("engine")


def _install_stop_handlers(flag: threading.Event) -> None:
    def on_signal(signum: int, _frame: Any) -> None:
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


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
    _install_stop_handlers(flag)
    run_id = None
    db = None
    try:
        db = open_store()
        runs.reap_dead(db)
        project = projects.get(db, project_name) if project_name else None
        ctx = Context(db=db, emit=emit, project=project, threads=_threads(), stop_flag=flag)
        if record:
            run_id = runs.start(db, project.id if project else None, stage, config or {})
            ctx.run_id = run_id
        emit({"event": "started", "stage": stage, "run_id": run_id, "pid": os.getpid(), "project": project_name})
        summary = body(ctx) or {}
        partial = bool(summary.get("problems"))
        if run_id:
            runs.end(db, run_id, "finished", _counts(summary))
        emit({"event": "finished", "stage": stage, "run_id": run_id, "summary": summary})
        return EXIT_PARTIAL if partial else EXIT_OK
    except (Interrupted, KeyboardInterrupt):
        if db is not None and run_id:
            runs.end(db, run_id, "interrupted", error="stopped on request")
        emit(
            {
                "event": "interrupted",
                "stage": stage,
                "run_id": run_id,
                "message": "stopped on request; run the same command again to resume",
            }
        )
        return EXIT_INTERRUPTED
    except UserError as exc:
        if db is not None and run_id:
            runs.end(db, run_id, "failed", error=str(exc))
        emit({"event": "failed", "stage": stage, "run_id": run_id, "error": str(exc), "kind": "input"})
        return EXIT_USER
    except OSError as exc:  # disk full, permissions, vanished files: the user can act on these
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        message = f"file system error{where}: {exc.strerror or exc}"
        if db is not None and run_id:
            try:
                runs.end(db, run_id, "failed", error=message)
            except Exception:  # the store itself may be what failed
                pass
        emit({"event": "failed", "stage": stage, "run_id": run_id, "error": message, "kind": "io"})
        return EXIT_USER
    except Exception as exc:  # a bug: full traceback to the log file, one line to the user
        where = _write_crash_log(stage)
        if db is not None and run_id:
            runs.end(db, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        emit(
            {
                "event": "failed",
                "stage": stage,
                "run_id": run_id,
                "kind": "internal",
                "error": f"internal error {type(exc).__name__}: {exc} (details in {where})",
            }
        )
        return EXIT_BUG


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
