"""export (merge, GGUF, quantize, parity) and tools setup."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from engine.stages.context import Context


def run(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.export import run_export

    quants = [q.strip() for q in a.quant.split(",") if q.strip()] if a.quant else []
    return run_export(ctx, a.adapter, quants, lora=not a.no_lora, parity_check=not a.no_parity)


def tools_setup(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages import converter

    return converter.setup(Path(a.sdist) if a.sdist else None)
