"""eval run|list|show, and seeds hold-out."""

from __future__ import annotations

import json
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.paths import check_output
from engine.spec.commands import stage
from engine.spec.evaluate import EvalSettings
from engine.spec.kinds import JobStatus
from engine.spec.stage import build, describe_errors, given
from engine.stages.context import Context


def _settings(a: Namespace) -> EvalSettings:
    from pydantic import ValidationError

    knobs = stage("eval run").knobs
    try:
        return build(EvalSettings, knobs, given(knobs, a))  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise UserError(describe_errors(exc, knobs)) from None


def _sets(ctx: Context, s: EvalSettings) -> list[Any]:
    from engine.stages import eval_data

    project = ctx.need_project()
    sets = [eval_data.load_file(Path(p)) for p in s.data]
    if s.pubmedqa:
        sets.append(eval_data.load_pubmedqa(Path(s.pubmedqa).expanduser()))
    if s.seeds:
        sets += eval_data.held_out_seed_sets(ctx.db, project)
    sets = [eval_data.limited(x, s.limit) for x in sets]
    if s.off_domain:
        sets.append(eval_data.limited(eval_data.general_set(), s.limit))
    return sets


def _write_json(path: str, results: dict[str, Any]) -> str:
    out = Path(path).expanduser()
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(results, indent=2), encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"{out}: cannot write the results: {exc.strerror or exc}") from None
    return str(out)


def _show(ctx: Context, results: dict[str, Any], json_out: str | None) -> dict[str, Any]:
    from engine.eval_report import headline_text, table_rows

    header, rows = table_rows(results)
    ctx.table(header, rows, "no results")
    summary: dict[str, Any] = {"eval_id": results.get("eval_id"), "models": " vs ".join(results["models"])}
    if len(results["models"]) >= 2:
        summary["headline"] = headline_text(results)
    for key in ("domain_mean_difference", "off_domain_mean_difference"):
        if key in results:
            summary[key] = f"{results[key]:+.3f}"
    if json_out:
        summary["json"] = _write_json(json_out, results)
    return summary


def run(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.evaluate import default_models, run_eval

    s = _settings(a)
    project = ctx.need_project()
    if a.json:
        check_output(Path(a.json), ctx.db, "results JSON")
    sets = _sets(ctx, s)  # the files first: a bad file is reported before anything about models
    specs = list(s.models) or default_models(ctx, project)
    results = run_eval(ctx, sets, specs, s.shots, s.max_tokens, a.new)
    return _show(ctx, results, a.json)


def _diff(results: dict[str, Any], key: str) -> str:
    return f"{results[key]:+.3f}" if key in results else "-"


def list_(ctx: Context, a: Namespace) -> None:
    from engine.store import evals

    rows = []
    for ev in evals.list_for(ctx.db, ctx.need_project()):
        rows.append(
            [
                ev.id,
                ev.status,
                " vs ".join(ev.config.get("models", [])),
                ", ".join(d[0] for d in ev.config.get("datasets", [])),
                ev.config.get("shots", 0),
                _diff(ev.results, "domain_mean_difference"),
                _diff(ev.results, "off_domain_mean_difference"),
                ev.updated_at,
            ]
        )
    ctx.table(
        ["eval", "status", "models", "datasets", "shots", "domain diff", "off-domain diff", "updated"],
        rows,
        "no evaluations yet (selfspec-tui eval run --project P)",
    )


def show(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.store import evals

    ev = evals.get(ctx.db, a.id)
    if ev.project_id != ctx.need_project().id:
        raise UserError(f"evaluation {a.id} belongs to another project")
    if ev.status != JobStatus.DONE:
        raise UserError(f"evaluation {a.id} is {ev.status}: run `eval run` with the same settings to finish it")
    if a.json:
        check_output(Path(a.json), ctx.db, "results JSON")
    return _show(ctx, {**ev.results, "eval_id": ev.id}, a.json)


def hold_out(ctx: Context, a: Namespace) -> dict[str, Any]:
    from engine.stages.eval_data import reserve_seeds

    return reserve_seeds(ctx.db, ctx.need_project(), a.fraction, a.seed)
