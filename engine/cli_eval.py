"""The `eval run|list|show` and `seeds hold-out` commands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.paths import check_output
from engine.stages.context import Context


def _sets(ctx: Context, a: argparse.Namespace) -> list[Any]:
    from engine.stages import eval_data

    project = ctx.need_project()
    sets = [eval_data.load_file(Path(p)) for p in a.data or []]
    if a.pubmedqa:
        sets.append(eval_data.load_pubmedqa(Path(a.pubmedqa).expanduser()))
    if not a.no_seeds:
        sets += eval_data.held_out_seed_sets(ctx.db, project)
    sets = [eval_data.limited(s, a.limit) for s in sets]
    if not a.no_off_domain:
        sets.append(eval_data.limited(eval_data.general_set(), a.limit))
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
    from engine.eval_report import table_rows

    header, rows = table_rows(results)
    ctx.result({"view": "table", "header": header, "rows": rows, "empty": "no results"})
    summary: dict[str, Any] = {"eval_id": results.get("eval_id"), "models": " vs ".join(results["models"])}
    for key in ("domain_mean_difference", "off_domain_mean_difference"):
        if key in results:
            summary[key] = f"{results[key]:+.3f}"
    if json_out:
        summary["json"] = _write_json(json_out, results)
    return summary


def _eval_run(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.evaluate import default_models, run_eval

    if a.shots < 0 or a.shots > 16:
        raise UserError(f"--shots: {a.shots} must be between 0 and 16")
    if a.limit is not None and a.limit < 1:
        raise UserError(f"--limit: {a.limit} must be at least 1")
    project = ctx.need_project()
    if a.json:
        check_output(Path(a.json), ctx.db, "results JSON")
    sets = _sets(ctx, a)  # the files first: a bad file is reported before anything about models
    with ctx.exclusive("evaluation", "eval run"):
        specs = a.model or default_models(ctx, project)
        results = run_eval(ctx, sets, specs, a.shots, a.max_tokens, a.new)
    return _show(ctx, results, a.json)


def _eval_list(ctx: Context, a: argparse.Namespace) -> None:
    from engine.store import evals

    rows = []
    for ev in evals.list_for(ctx.db, ctx.need_project()):
        r = ev.results
        rows.append(
            [
                ev.id,
                ev.status,
                " vs ".join(ev.config.get("models", [])),
                ", ".join(d[0] for d in ev.config.get("datasets", [])),
                ev.config.get("shots", 0),
                f"{r['domain_mean_difference']:+.3f}" if "domain_mean_difference" in r else "-",
                f"{r['off_domain_mean_difference']:+.3f}" if "off_domain_mean_difference" in r else "-",
                ev.updated_at,
            ]
        )
    ctx.result(
        {
            "view": "table",
            "header": ["eval", "status", "models", "datasets", "shots", "domain diff", "off-domain diff", "updated"],
            "rows": rows,
            "empty": "no evaluations yet (selfspec-tui eval run --project P)",
        }
    )


def _eval_show(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.store import evals

    ev = evals.get(ctx.db, a.id)
    if ev.project_id != ctx.need_project().id:
        raise UserError(f"evaluation {a.id} belongs to another project")
    if ev.status != "done":
        raise UserError(f"evaluation {a.id} is {ev.status}: run `eval run` with the same settings to finish it")
    if a.json:
        check_output(Path(a.json), ctx.db, "results JSON")
    return _show(ctx, {**ev.results, "eval_id": ev.id}, a.json)


def _seeds_hold_out(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from engine.stages.eval_data import reserve_seeds

    return reserve_seeds(ctx.db, ctx.need_project(), a.fraction, a.seed)


COMMANDS: dict[str, tuple[Any, bool, bool]] = {
    "eval run": (_eval_run, True, True),
    "eval list": (_eval_list, True, False),
    "eval show": (_eval_show, True, False),
    "seeds hold-out": (_seeds_hold_out, True, False),
}


def add_parsers(group: Any, seeds: argparse._SubParsersAction) -> None:
    ev = group("eval", "evaluate the expert against its base (per dataset, with intervals and baselines)")
    run = ev.add_parser("run", help="score base and expert on evaluation sets (resumable)")
    run.add_argument("--project", required=True)
    run.add_argument("--data", action="append", metavar="FILE", help="labelled .jsonl or PubMedQA .json (repeatable)")
    run.add_argument("--pubmedqa", metavar="FILE", help="a PubMedQA file in the ori_pqal.json layout")
    run.add_argument(
        "--model", action="append", help="base, EXPERT:QUANT, base+EXPERT, hf:base, hf:EXPERT (first is the baseline)"
    )
    run.add_argument("--shots", type=int, default=0, help="demonstrations from the training pool (default 0)")
    run.add_argument("--limit", type=int, help="a fixed random subset of N items per set")
    run.add_argument("--max-tokens", type=int, default=128, help="answer length for free-form sets")
    run.add_argument("--no-seeds", action="store_true", help="leave out the held-out seeds")
    run.add_argument("--no-off-domain", action="store_true", help="leave out the shipped general set")
    run.add_argument("--json", metavar="FILE", help="also write the full results as JSON")
    run.add_argument("--new", action="store_true", help="start over instead of resuming the same settings")
    ls = ev.add_parser("list", help="list evaluations")
    ls.add_argument("--project", required=True)
    show = ev.add_parser("show", help="print a finished evaluation's table")
    show.add_argument("id", type=int)
    show.add_argument("--project", required=True)
    show.add_argument("--json", metavar="FILE")
    ho = seeds.add_parser("hold-out", help="reserve a share of the seeds for evaluation (kept out of generation)")
    ho.add_argument("--project", required=True)
    ho.add_argument("--fraction", type=float, default=0.2, help="share of seeds to hold out (0 releases them)")
    ho.add_argument("--seed", type=int, default=0)
