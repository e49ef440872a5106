"""Evaluate: does the expert beat its base? Per dataset, with intervals, baselines and an off-domain check.

Models are named like chat's (`base`, `NAME:q8_0`, `base+NAME`: GGUF through llama.cpp) or
`hf:base` / `hf:NAME` (transformers: the base model, or the expert's merged folder from export).
Every item's score is stored as soon as it is computed, so a cancelled or killed evaluation
resumes where it stopped; the same settings continue the same evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError
from engine.eval_report import main_difference, main_metric
from engine.spec import prompts
from engine.stages import calibration, chat, eval_data, models, scoring
from engine.stages.context import Context, Interrupted
from engine.stages.eval_data import EvalItem, EvalSet
from engine.store import adapters, evals
from engine.store.records import Project

FLUSH_EVERY = 8
"""items scored per pass and committed together"""
MIN_SET = 20
"""a set with fewer items is reported but marked too small, and never the headline"""
VARIANTS = (("", "raw"), ("_xfit", "cross-fit bias"), ("_cc", "contextual"))
"""classification scores: raw arg-max, and the two calibrations (engine.stages.calibration)"""


def content_free_set(ev: EvalSet) -> str:
    """Where a classification set's content-free scores are stored (contextual calibration)."""
    return f"{ev.name} · content-free"


def content_free_items(ev: EvalSet) -> list[EvalItem]:
    return [EvalItem(f"cf-{i}", text, text, ev.labels[0], ev.labels) for i, text in enumerate(calibration.CONTENT_FREE)]


@dataclass(frozen=True)
class ModelRef:
    spec: str
    format: str  # gguf | hf
    runtime: str  # llama.cpp | transformers
    path: Path
    lora: Path | None


def quick_fingerprint(path: Path) -> str:
    """sha256 of a file's size, first and last 4 MiB (a folder: of its files' fingerprints)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(4 << 20))
            if size > 8 << 20:
                fh.seek(-(4 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:16]


def resolve_model(ctx: Context, project: Project, spec: str) -> ModelRef:
    if spec.startswith("mix:"):  # a mixture of experts (engine.backends.runtimes.mixture_runtime)
        from engine.stages.mixture import descriptor

        desc, router = descriptor(ctx, spec[4:].partition("@")[0])
        fmt = "mixture-gguf" if spec.endswith("@gguf") else "mixture"
        return ModelRef(spec, fmt, "mixture", desc, router)
    if spec.startswith("hf:"):
        name = spec[3:]
        if name == "base":
            fmt, path, _ = models.resolve(ctx.db, project.base_model)
            if fmt not in ("gguf", "hf"):
                raise UserError(f"the base model {project.base_model!r} cannot be loaded by transformers")
            return ModelRef(spec, fmt, "transformers", path, None)
        adapters.by_name(ctx.db, project, name)  # a clear error for an unknown expert
        merged = paths.child(ctx.workdir / "exports", name, "export") / "merged"
        if not (merged / "config.json").exists():
            raise UserError(f"{spec}: no merged model for {name!r} yet: export it first (selfspec-tui export)")
        return ModelRef(spec, "hf", "transformers", merged, None)
    choice = chat.resolve(ctx, project, spec)
    return ModelRef(choice.spec, "gguf", "llama.cpp", choice.path, choice.lora)


def adapter_of(spec: str) -> str | None:
    """The expert of this project a model spec names (None for the base and for mixtures)."""
    if spec.startswith("mix:"):
        return None
    name = spec[3:] if spec.startswith("hf:") else spec.split("+", 1)[1] if spec.startswith("base+") else spec
    name = name.split(":", 1)[0]
    return None if name == "base" else name


def default_models(ctx: Context, project: Project) -> list[str]:
    """The base and the current expert: GGUF files when exported, else transformers."""
    current = adapters.current(ctx.db, project) or next(
        (a for a in reversed(adapters.list_for(ctx.db, project)) if a.status == "done"), None
    )
    if current is None:
        raise UserError(f"{project.name} has no trained expert yet: train one first (selfspec-tui train)")
    offered = [c.spec for c in chat.available(ctx, project)]
    expert = next((s for s in offered if s.startswith(f"{current.name}:")), None)
    if expert and "base" in offered:
        return ["base", expert]
    return ["hf:base", f"hf:{current.name}"]


def prompt_for(item: EvalItem, demos: list[EvalItem]) -> str:
    """Alpaca blocks, as generation and training use: the demonstrations answered, then the item."""
    return prompts.few_shot(((d.instruction, d.input, d.output) for d in demos), item.instruction, item.input)


def score_items(
    scorer: Any, ev: EvalSet, items: list[EvalItem], prompts: list[str], max_tokens: int
) -> list[evals.ItemScore]:
    """Scores of a chunk of items; label log-likelihoods in one batched pass where the runtime has one."""
    many = getattr(scorer, "label_logprobs_many", None)
    if not ev.classification or many is None:
        return [score_item(scorer, ev, i, p, max_tokens) for i, p in zip(items, prompts)]
    found = many(prompts, [list(i.labels) for i in items])
    return [_labelled(scorer, ev, i, lps) for i, lps in zip(items, found)]


def _labelled(scorer: Any, ev: EvalSet, item: EvalItem, lps: list[float]) -> evals.ItemScore:
    labels = list(item.labels)
    pred = labels[max(range(len(labels)), key=lambda i: lps[i])]
    detail: dict[str, Any] = {"logprobs": {label: round(lp, 4) for label, lp in zip(labels, lps)}}
    if getattr(scorer, "last_routing", None):  # a mixture: which experts the prompt's tokens went to
        detail["routing"] = list(scorer.last_routing)
    return evals.ItemScore(ev.name, scorer.name, item.key, item.output, pred, float(pred == item.output), detail)


def score_item(scorer: Any, ev: EvalSet, item: EvalItem, prompt: str, max_tokens: int) -> evals.ItemScore:
    if ev.classification:
        return _labelled(scorer, ev, item, scorer.label_logprobs(prompt, list(item.labels)))
    out = scorer.generate(prompt, max_tokens)
    detail: dict[str, Any] = {"exact_match": scoring.exact_match(out, item.output)}
    if getattr(scorer, "last_routing", None):
        detail["routing"] = list(scorer.last_routing)
    return evals.ItemScore(ev.name, scorer.name, item.key, item.output, out, scoring.rouge_l(out, item.output), detail)


def run_eval(
    ctx: Context,
    sets: list[EvalSet],
    specs: list[str],
    shots: int = 0,
    max_tokens: int = 128,
    new: bool = False,
) -> dict[str, Any]:
    from engine.backends import registry
    from engine.backends.types import ModelFile

    project = ctx.need_project()
    if not sets:
        raise UserError(
            "nothing to evaluate: pass --data FILE, hold out seeds (seeds hold-out), or keep the off-domain set"
        )
    if len({s.name for s in sets}) != len(sets):
        raise UserError("two evaluation sets have the same name; rename a file")
    refs = [resolve_model(ctx, project, s) for s in specs]
    pool = eval_data.few_shot_pool(ctx.db, project, sets) if shots else []
    if shots and not pool:
        raise UserError(f"{shots}-shot needs approved training examples as demonstrations; {project.name} has none")
    config = {
        "datasets": [[s.name, s.fingerprint, len(s.items)] for s in sets],
        "models": specs,
        "shots": shots,
        "max_tokens": max_tokens,
        "demonstrations": "shared",  # one few-shot set for every item (before: one per item)
    }
    model_prints = {
        r.spec: quick_fingerprint(r.path) + (f"+{quick_fingerprint(r.lora)}" if r.lora else "") for r in refs
    }
    # the same settings on the same files continue (or reuse) the same evaluation
    key = hashlib.sha256(json.dumps([config, model_prints], sort_keys=True).encode()).hexdigest()[:16]
    if not new:
        finished = evals.finished(ctx.db, project, key)
        if finished is not None:
            ctx.log(f"evaluation {finished.id} already scored these models on these sets (--new to score again)")
            return {**finished.results, "eval_id": finished.id}
    ev = None if new else evals.unfinished(ctx.db, project, key)
    if ev is None:
        experts = [adapters.by_name(ctx.db, project, n) for n in dict.fromkeys(filter(None, map(adapter_of, specs)))]
        fingerprints = {
            "models": model_prints,
            "data": {s.name: s.fingerprint for s in sets},
            "adapters": {
                a.name: {"training_data": a.fingerprint, "config": a.config.get("train", {})} for a in experts
            },
        }
        ev = evals.create(ctx.db, project, key, config, fingerprints)
        ctx.log(f"evaluation {ev.id}: {len(specs)} model(s) on {len(sets)} set(s), {shots}-shot")
    else:
        evals.set_status(ctx.db, ev.id, "running")
        ctx.log(f"resuming evaluation {ev.id}")
    total = len(refs) * sum(len(s.items) for s in sets)
    todo = {
        (r.spec, s.name): [i for i in s.items if i.key not in evals.done_keys(ctx.db, ev.id, s.name, r.spec)]
        for r in refs
        for s in sets
    }
    progress = ctx.progress("eval", total, "items", done=total - sum(len(v) for v in todo.values()))
    try:
        for ref in refs:
            if not any(todo[(ref.spec, s.name)] or _needs_content_free(ctx, ev.id, ref.spec, s) for s in sets):
                continue
            ctx.log(f"scoring with {ref.spec} ({ref.format} on {ref.runtime}) ...")
            model = ModelFile(ref.spec, ref.format, ref.path, ref.lora)
            scorer = registry.open_scorer(model, ctx.threads, ref.runtime)
            try:
                for s in sets:
                    items = todo[(ref.spec, s.name)]
                    for start in range(0, len(items), FLUSH_EVERY):
                        ctx.check_stop()
                        chunk = items[start : start + FLUSH_EVERY]
                        prompts = [prompt_for(i, eval_data.demonstrations(pool, i, shots)) for i in chunk]
                        evals.record(ctx.db, ev.id, score_items(scorer, s, chunk, prompts, max_tokens))
                        progress.advance(len(chunk))
                    _score_content_free(ctx, ev.id, scorer, s, pool, shots)
            finally:
                scorer.close()
    except Interrupted:
        evals.set_status(ctx.db, ev.id, "interrupted")
        raise
    except BaseException:
        evals.set_status(ctx.db, ev.id, "failed")
        raise
    progress.advance(0, force=True)
    results = summarize(sets, specs, evals.scores(ctx.db, ev.id))
    results["eval_id"] = ev.id
    evals.set_status(ctx.db, ev.id, "done", results)
    return results


def _needs_content_free(ctx: Context, eval_id: int, spec: str, s: EvalSet) -> bool:
    return s.classification and not evals.done_keys(ctx.db, eval_id, content_free_set(s), spec)


def _score_content_free(ctx: Context, eval_id: int, scorer: Any, s: EvalSet, pool: list, shots: int) -> None:  # type: ignore[type-arg]
    """The label scores of the content-free inputs, with the same demonstrations (a few passes)."""
    if not _needs_content_free(ctx, eval_id, scorer.name, s):
        return
    items = content_free_items(s)
    prompts = [prompt_for(i, eval_data.demonstrations(pool, i, shots)) for i in items]
    stored = score_items(scorer, s, items, prompts, 1)
    evals.record(ctx.db, eval_id, [replace(x, dataset=content_free_set(s)) for x in stored])


def summarize(sets: list[EvalSet], specs: list[str], stored: list[evals.ItemScore]) -> dict[str, Any]:
    """Per dataset and model: scores with 95% bootstrap intervals, baselines, and expert − base.

    Classification sets get each figure three ways (VARIANTS): raw, with a cross-fitted per-label
    bias, and with contextual calibration; the predicted-label counts of each. A set under MIN_SET
    items is marked `too_small` and left out of the mean differences and the headline.
    """
    by: dict[tuple[str, str], dict[str, evals.ItemScore]] = {}
    for s in stored:
        by.setdefault((s.dataset, s.model), {})[s.item_key] = s
    rows = []
    for ev in sets:
        keys = [i.key for i in ev.items]
        gold = [i.output for i in ev.items]
        entry: dict[str, Any] = {
            "dataset": ev.name,
            "n": len(keys),
            "kind": "classification" if ev.classification else "free-form",
            "off_domain": ev.off_domain,
            "too_small": len(keys) < MIN_SET,
            "models": {},
        }
        per_item: dict[str, dict[str, list[float]]] = {}
        preds: dict[str, dict[str, list[str]]] = {}
        for spec in specs:
            got = by.get((ev.name, spec), {})
            if not keys or any(k not in got for k in keys):
                continue
            items = [got[k] for k in keys]
            if ev.classification:
                preds[spec] = _predictions(ev, items, list(by.get((content_free_set(ev), spec), {}).values()))
                per_item[spec] = {v: [float(p == g) for p, g in zip(pr, gold)] for v, pr in preds[spec].items()}
                entry["models"][spec] = _classification_scores(gold, list(ev.labels), preds[spec], per_item[spec])
            else:
                per_item[spec] = {"": [x.score for x in items]}
                exact = [float(x.detail.get("exact_match", 0.0)) for x in items]
                entry["models"][spec] = {
                    "rouge_l": sum(per_item[spec][""]) / len(items),
                    "rouge_l_ci": scoring.bootstrap_mean(per_item[spec][""]),
                    "exact_match": sum(exact) / len(items),
                }
        if ev.classification:
            entry["labels"] = list(ev.labels)
            entry["gold"] = dict(Counter(gold))
            entry["baselines"] = scoring.baselines(gold, list(ev.labels))
        for spec, scores in entry["models"].items():
            routed: list[list[int]] = [by[(ev.name, spec)][k].detail.get("routing") or [] for k in keys]
            if routed and all(routed):  # a mixture's share of token routings per expert over the set's prompts
                total = max(1, sum(sum(r) for r in routed))
                scores["routing"] = [sum(col) / total for col in zip(*routed, strict=True)]
        base = specs[0] if specs else ""
        for other in specs[1:]:  # every later model (an expert, a second round) against the first
            if base not in per_item or other not in per_item:
                continue
            if ev.classification:
                diff = {}
                for v in preds[base].keys() & preds[other].keys():
                    diff[f"accuracy{v}"] = scoring.paired_difference(per_item[base][v], per_item[other][v])
                    diff[f"macro_f1{v}"] = scoring.paired_macro_f1_difference(
                        gold, preds[base][v], preds[other][v], list(ev.labels)
                    )
            else:
                diff = {"rouge_l": scoring.paired_difference(per_item[base][""], per_item[other][""])}
            entry.setdefault("differences", {})[other] = diff
        if len(specs) >= 2 and specs[1] in entry.get("differences", {}):
            entry["difference"] = entry["differences"][specs[1]]
        rows.append(entry)
    out: dict[str, Any] = {"models": specs, "datasets": rows}
    for flag, name in ((False, "domain"), (True, "off_domain")):
        counted = [r for r in rows if r["off_domain"] == flag and "difference" in r and not r["too_small"]]
        if counted:
            out[f"{name}_mean_difference"] = sum(main_difference(r) for r in counted) / len(counted)
    headline = _headline(rows)
    if headline:
        out["headline"] = headline
    return out


def _predictions(
    ev: EvalSet, items: list[evals.ItemScore], content_free: list[evals.ItemScore]
) -> dict[str, list[str]]:
    """Raw predictions, and the calibrated ones where the label log-likelihoods are stored."""
    out = {"": [x.prediction for x in items]}
    found = [x.detail.get("logprobs") for x in items]
    if not all(isinstance(lp, dict) and lp for lp in found):
        return out
    gold = [x.gold for x in items]
    out["_xfit"], _ = calibration.cross_fit(found, gold, [x.item_key for x in items], list(ev.labels))  # type: ignore[arg-type]
    if content_free:
        prior = calibration.content_free_prior([x.detail["logprobs"] for x in content_free])
        out["_cc"] = calibration.contextual(found, prior)  # type: ignore[arg-type]
    return out


def _classification_scores(
    gold: list[str], labels: list[str], preds: dict[str, list[str]], hits: dict[str, list[float]]
) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    for v, pred in preds.items():
        scores[f"accuracy{v}"] = scoring.accuracy(gold, pred)
        scores[f"accuracy{v}_ci"] = scoring.bootstrap_mean(hits[v])
        scores[f"macro_f1{v}"] = scoring.macro_f1(gold, pred, labels)
        scores[f"macro_f1{v}_ci"] = scoring.bootstrap_macro_f1(gold, pred, labels)
        scores[f"predicted{v}"] = dict(Counter(pred))
    return scores


def _headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The largest in-domain set of at least MIN_SET items with a difference (classification first)."""
    fit = [r for r in rows if not r["off_domain"] and not r["too_small"] and "difference" in r]
    if not fit:
        return None
    best = max(fit, key=lambda r: (r["kind"] == "classification", r["n"]))
    metric = main_metric(best)
    return {"dataset": best["dataset"], "n": best["n"], "metric": metric, "difference": best["difference"][metric]}
