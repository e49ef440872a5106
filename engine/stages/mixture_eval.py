"""Evaluating a mixture (Self-MoE): the base, each expert alone, and the mixture routed per token and
per prompt, on every expert domain's held-out seed sets and the off-domain set, in one table.

Each domain's scores are an ordinary evaluation of that project (stored item by item, so a cancelled
or killed run resumes; the same settings reuse the finished one). The mixture rows also carry the
share of token routings that went to each expert on each set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.eval_report import main_metric
from engine.stages import eval_data
from engine.stages.context import Context
from engine.stages.evaluate import run_eval
from engine.stages.mixture import descriptor
from engine.store import mixtures, projects


def specs_for(name: str, n_experts: int, gguf: bool) -> list[str]:
    """base first (every difference is against it), then each expert alone, then the routings: per
    token, per prompt, and per prompt on llama.cpp once the mixture is exported."""
    specs = ["hf:base", *[f"mix:{name}@{i}" for i in range(n_experts)], f"mix:{name}", f"mix:{name}@seq"]
    return specs + ([f"mix:{name}@gguf"] if gguf else [])


def evaluate_mixture(
    ctx: Context, name: str, limit: int | None, shots: int, max_tokens: int, new: bool
) -> dict[str, Any]:
    m = mixtures.by_name(ctx.db, name)
    descriptor(ctx, name)  # refuses an untrained mixture before any model loads
    specs = specs_for(name, len(m.experts), bool(m.metrics.get("gguf")))
    labels = {"hf:base": "base", f"mix:{name}": "mixture (token)", f"mix:{name}@seq": "mixture (prompt)"}
    labels[f"mix:{name}@gguf"] = "mixture (prompt, GGUF)"
    labels.update({f"mix:{name}@{i}": f"{n} alone" for i, n in enumerate(m.expert_names())})
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for domain in dict.fromkeys(e["project"] for e in m.experts):
        project = projects.get(ctx.db, domain)
        sets = [eval_data.limited(s, limit) for s in eval_data.held_out_seed_sets(ctx.db, project)]
        sets.append(eval_data.limited(eval_data.general_set(), limit))
        ctx.log(f"{domain}: {len(sets)} set(s), {len(specs)} models")
        found = run_eval(replace(ctx, project=project), sets, specs, shots, max_tokens, new)
        results[domain] = found
        for entry in found["datasets"]:
            metric = main_metric(entry)
            for spec in specs:
                scores = entry["models"].get(spec)
                if scores is None:
                    continue
                diff = entry.get("differences", {}).get(spec, {}).get(metric)
                shown = "@" not in spec[4:] or spec.endswith("@gguf")
                routing = m.share_text(scores["routing"]) if "routing" in scores and shown else ""
                rows.append(
                    [
                        domain,
                        entry["dataset"] + (" [too small]" if entry["too_small"] else ""),
                        entry["n"],
                        labels[spec],
                        metric,
                        round(float(scores[metric]), 4),
                        "" if diff is None else f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]",
                        routing,
                    ]
                )
    ctx.table(["domain", "set", "n", "model", "metric", "score", "vs base [95% CI]", "routing"], rows)
    mixtures.update_metrics(ctx.db, m.id, {"evaluation": {d: r.get("eval_id") for d, r in results.items()}})
    return {"mixture": name, "evaluations": {d: r.get("eval_id") for d, r in results.items()}}
