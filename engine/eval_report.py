"""Evaluation results as text: the table the CLI prints and the TUI shows (pure; no models).

Results are the dict `engine.stages.evaluate.summarize` stores: per dataset, each model's
scores with 95% bootstrap intervals, baselines, and the paired difference expert − base.
"""

from __future__ import annotations

from typing import Any


def main_metric(entry: dict[str, Any]) -> str:
    return "macro_f1" if entry["kind"] == "classification" else "rouge_l"


def main_difference(entry: dict[str, Any]) -> float:
    return float(entry["difference"][main_metric(entry)][0])


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The evaluation as a printable table: one row per dataset and metric."""
    specs = results["models"]
    header = ["dataset", "n", "metric", *specs]
    if len(specs) >= 2:
        header.append(f"{specs[1]} − {specs[0]}")
    header += ["majority", "chance"]
    rows = []
    for entry in results["datasets"]:
        metrics = ["accuracy", "macro_f1"] if entry["kind"] == "classification" else ["rouge_l", "exact_match"]
        for metric in metrics:
            row = [entry["dataset"] + (" [off-domain]" if entry["off_domain"] else ""), str(entry["n"]), metric]
            for spec in specs:
                m = entry["models"].get(spec)
                if m is None:
                    row.append("-")
                    continue
                ci = m.get(f"{metric}_ci")
                row.append(f"{m[metric]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            if len(specs) >= 2:
                d = entry.get("difference", {}).get(metric)
                row.append(f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d else "-")
            b = entry.get("baselines", {})
            key = "accuracy" if metric == "accuracy" else "macro_f1"
            row += (
                [f"{b[f'majority_{key}']:.3f}", f"{b[f'chance_{key}']:.3f}"]
                if b and metric in ("accuracy", "macro_f1")
                else ["-", "-"]
            )
            rows.append(row)
    return header, rows


def chart_series(results: dict[str, Any]) -> tuple[list[str], dict[str, list[float]], list[float]]:
    """Per dataset, each model's main score (macro-F1 or ROUGE-L) and the best no-reading baseline."""
    names, chance = [], []
    per_model: dict[str, list[float]] = {spec: [] for spec in results.get("models", [])}
    for entry in results.get("datasets", []):
        metric = main_metric(entry)
        names.append(entry["dataset"])
        for spec in per_model:
            per_model[spec].append(float(entry["models"].get(spec, {}).get(metric, 0.0)))
        b = entry.get("baselines") or {}
        chance.append(max(b.get("majority_macro_f1", 0.0), b.get("chance_macro_f1", 0.0)) if b else 0.0)
    return names, per_model, chance
