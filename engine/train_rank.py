"""One training process of several: `torchrun ... -m engine.train_rank --project P --adapter A`.

torchrun starts one of these per process and describes its rank in the environment. Every rank
loads the base and the adapter's frozen data and runs the same loop (engine.stages.train._train)
on its share of each step's micro-batches. Rank 0 alone writes the store, the checkpoints and the
adapter, and prints the engine's JSON events on stdout for the launching command to pass on
(engine.stages.train_launch). SIGTERM (which torchrun forwards to every rank) asks for a stop: the
ranks agree on it at the next step's end, and rank 0 writes a checkpoint first.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from engine import paths
from engine.errors import Interrupted, UserError
from engine.events import json_sink
from engine.spec import events as ev

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    from engine.cli import _quiet_libraries

    p = argparse.ArgumentParser(prog="engine.train_rank")
    p.add_argument("--project", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    args = p.parse_args(argv)
    _quiet_libraries()
    paths.private_umask()
    flag = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: flag.set())
    rank = int(os.environ.get("RANK", "0"))
    emit = json_sink() if rank == 0 else (lambda _event: None)
    try:
        return _run(args.project, args.adapter, args.strategy, flag, emit)
    except UserError as exc:
        emit(ev.Failed(str(exc), "train", None, "input"))
        return EXIT_USER
    except Exception as exc:
        print(f"rank {rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}", file=sys.stderr)
        emit(ev.Failed(f"rank {rank}: {type(exc).__name__}: {exc}", "train", None, "internal"))
        return EXIT_BUG


def _run(project_name: str, adapter_name: str, strategy: str, flag: threading.Event, emit: object) -> int:
    from engine.backends.dist import from_env
    from engine.cpu import free_cores
    from engine.spec.train import TrainConfig
    from engine.stages.context import Context
    from engine.stages.train import _train
    from engine.store import adapters, open_store, projects

    db = open_store()
    project = projects.get(db, project_name)
    adapter = adapters.by_name(db, project, adapter_name)
    cfg = TrainConfig.model_validate(adapter.config["train"])
    ranks = from_env(cfg.device, strategy)
    on_this_machine = int(os.environ.get("LOCAL_WORLD_SIZE", str(ranks.world)))
    threads = max(1, free_cores() // max(1, on_this_machine)) if cfg.device != "cuda" else 1
    ctx = Context(db=db, emit=emit, project=project, threads=threads, stop_flag=flag)  # type: ignore[arg-type]
    try:
        summary = _train(ctx, adapter, ranks)
    except Interrupted:
        if ranks.main:
            ctx.send(ev.Interrupted("train", None))
        return EXIT_INTERRUPTED
    finally:
        ranks.close()
    if ranks.main:
        ctx.send(ev.Finished("train", None, summary))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
