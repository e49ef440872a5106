"""Iterative self-specialization (the paper's option): a new generation takes the tasks of an earlier
one (`--tasks-from`) and a trained expert answers them (`--respond-with`); an adapter trained on
those answers is round 2."""

from __future__ import annotations

from typing import Any

from engine.errors import UserError
from engine.stages.templates import completion
from engine.store import generation as store


def copy_tasks(run: Any) -> None:
    """Round 2: the tasks of an earlier generation of this project, answered again."""
    source = store.get(run.ctx.db, run.config.tasks_from)
    if source.project_id != run.project.id or source.id == run.gen.id:
        raise UserError(f"--tasks-from {source.id}: not another generation of {run.project.name}")
    if source.phase == "brainstorm":
        raise UserError(f"--tasks-from {source.id}: that generation is still brainstorming; finish it first")
    kept = store.copy_tasks(run.ctx.db, source.id, run.gen.id)
    run.ctx.log(f"took the {kept} kept tasks of generation {source.id}")


def load_expert(run: Any) -> None:
    """Round 2: answers come from a trained expert (a GGUF export, base + LoRA, or its merged folder)."""
    from engine.backends.types import GeneratorOptions, ModelFile
    from engine.stages.evaluate import resolve_model

    if getattr(run, "_expert_loaded", False):
        return
    if run.generator is not None:
        run.generator.close()
        run.generator = None
    cfg = run.config
    ref = resolve_model(run.ctx, run.project, cfg.respond_with)
    run.ctx.log(f"answering with the expert {ref.spec} ({ref.format} on {ref.runtime})")
    options = GeneratorOptions(run.ctx.threads, cfg.context, cfg.device, cfg.batch_size)
    model = ModelFile(ref.spec, ref.format, ref.path, ref.lora)
    run.open_generator(model, options, ref.runtime)  # on Ray workers too, with --ray
    run.wrap = completion  # an expert is trained on plain Alpaca blocks
    run._expert_loaded = True
