"""The front end's engine child: a cancel that lands before the child can answer is still a cancel."""

from __future__ import annotations

import asyncio

from engine.spec.events import Interrupted
from selfspec_tui.engine_client import EngineRun


async def test_cancel_during_child_start_up_reads_as_cancelled(home) -> None:
    run = EngineRun("runs", "list")
    task = asyncio.create_task(run.run(lambda event: None))
    while run.proc is None:  # the child exists but is still importing: no signal handler yet
        await asyncio.sleep(0.001)
    run.cancel()
    outcome = await task
    assert run.cancelled and outcome.code != 0
    assert isinstance(outcome.last, Interrupted) and outcome.interrupted
    assert outcome.message == "cancelled; run it again to resume"


async def test_a_finished_child_is_not_a_cancel(home) -> None:
    run = EngineRun("runs", "list")
    outcome = await run.run(lambda event: None)
    run.cancel()  # too late: nothing to stop
    assert outcome.code == 0 and not run.cancelled and outcome.message == "done"
