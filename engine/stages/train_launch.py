"""`train --processes N`: the same training spread over N data-parallel processes by torchrun.

The command that asks for it keeps its role: it holds the project's training lock, opened (or
resumed) the adapter and froze its data. It then starts `torchrun --standalone --nproc-per-node N`
over engine.train_rank and passes rank 0's events (progress, log lines, the summary) on as
its own. A stop (Ctrl-C, SIGTERM, the TUI's cancel) is forwarded to torchrun, which forwards it to
every rank; they stop together at a step's end and rank 0 writes a checkpoint. If the command
itself dies (even kill -9), the kernel sends torchrun SIGTERM (PR_SET_PDEATHSIG), so no rank keeps
training unowned. Rerunning `train`, with any number of processes, resumes from the newest checkpoint.
"""

from __future__ import annotations

import ctypes
import json
import queue
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from engine import paths
from engine.errors import Interrupted, UserError
from engine.spec import events as ev
from engine.stages.context import Context
from engine.store import adapters
from engine.store.adapters import Adapter

MAX_PROCESSES = 64


def torchrun_command(project: str, adapter: str, processes: int, strategy: str = "ddp") -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "--max-restarts=0",
        "-m",
        "engine.train_rank",
        "--project",
        project,
        "--adapter",
        adapter,
        "--strategy",
        strategy,
    ]


def check_processes(processes: int, device: str) -> None:
    """Refuse a process count the machine cannot give (one GPU per process on CUDA)."""
    if not 1 <= processes <= MAX_PROCESSES:
        raise UserError(f"--processes {processes}: give 1 to {MAX_PROCESSES}")
    if device == "cpu":
        return
    from engine.backends.dist import gpu_count

    gpus = gpu_count()
    if gpus and processes > gpus:
        raise UserError(f"--processes {processes}: this machine has {gpus} GPU(s), one process per GPU")


def _die_with_parent() -> None:
    """In the launcher's child: receive SIGTERM when the launching command dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def launch(ctx: Context, adapter: Adapter, processes: int, strategy: str = "ddp") -> dict[str, Any]:
    """Train `adapter` on `processes` ranks; returns rank 0's summary. Raises Interrupted on a stop."""
    project = ctx.need_project()
    log_path = paths.home() / "logs" / "train-ranks.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = torchrun_command(project.name, adapter.name, processes, strategy)
    ctx.log(f"training on {processes} processes (torchrun, {strategy}); their log: {log_path}")
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"--- {adapter.name} in {project.name}: {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="backslashreplace",
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads touch the fork's child)
        )
        try:
            outcome = _follow(ctx, proc)
        finally:
            if proc.poll() is None:  # the command is being torn down: the ranks checkpoint and end
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
    return _conclude(ctx, adapter, proc.returncode, outcome, log_path)


def _follow(ctx: Context, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Pass rank 0's events on until torchrun ends; forward a stop once."""
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    outcome: dict[str, Any] = {"stopped": False}
    while True:
        if ctx.should_stop() and not outcome["stopped"]:
            outcome["stopped"] = True
            proc.send_signal(signal.SIGTERM)
            ctx.stop_flag.clear()  # taken: the ranks stop at their step's end (no forced interrupt here)
            ctx.log("stopping every training process at the end of its step ...")
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            proc.wait()
            return outcome
        event = _event(line)
        if isinstance(event, ev.Finished):
            outcome["summary"] = event.summary
        elif isinstance(event, ev.Failed):
            outcome["failed"] = event.error
        elif isinstance(event, ev.Interrupted):
            outcome["stopped"] = True
        elif isinstance(event, (ev.Progress, ev.Log, ev.Item)):
            ctx.send(event)


def _event(line: str) -> Any:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    return ev.parse(raw) if isinstance(raw, dict) else None


def _conclude(ctx: Context, adapter: Adapter, rc: int, outcome: dict[str, Any], log_path: Any) -> dict[str, Any]:
    if rc == 0 and "summary" in outcome:
        return dict(outcome["summary"])
    if outcome["stopped"]:
        raise Interrupted()
    reason = outcome.get("failed") or f"a training process ended with exit code {rc} (see {log_path})"
    adapters.set_status(ctx.db, adapter.id, "failed")
    raise UserError(f"{reason}; rerunning `train` resumes from the newest checkpoint")
