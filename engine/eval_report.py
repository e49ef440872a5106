"""Evaluation results as text: the table the CLI prints and the TUI shows (pure; no models).

Results are the dict `engine.stages.evaluate.summarize` stores: per dataset, each model's
scores with 95% bootstrap intervals, baselines, and the paired difference expert − base.
"""

from __future__ import annotations

from typing import Any

CALIBRATED = {"_xfit": "cross-fit bias", "_cc": "contextual"}


def main_metric(entry: dict[str, Any]) -> str:
    """Calibrated (cross-fit) macro-F1 for classification where it was computed, else raw; ROUGE-L."""
    if entry["kind"] != "classification":
        return "rouge_l"
    has_xfit = any("macro_f1_xfit" in m for m in entry["models"].values())
    return "macro_f1_xfit" if has_xfit else "macro_f1"


def main_difference(entry: dict[str, Any]) -> float:
    return float(entry["difference"][main_metric(entry)][0])


def _metrics(entry: dict[str, Any]) -> list[str]:
    if entry["kind"] != "classification":
        return ["rouge_l", "exact_match"]
    out = ["accuracy", "macro_f1"]
    for v in CALIBRATED:
        if any(f"macro_f1{v}" in m for m in entry["models"].values()):
            out += [f"accuracy{v}", f"macro_f1{v}"]
    return out


def metric_label(metric: str) -> str:
    for v, name in CALIBRATED.items():
        if metric.endswith(v):
            return f"{metric[: -len(v)]} ({name})"
    return metric


def predicted_text(counts: dict[str, int], labels: list[str]) -> str:
    return " ".join(f"{label} {counts.get(label, 0)}" for label in labels)


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The evaluation as a printable table: one row per dataset and metric, and the predicted labels."""
    specs = results["models"]
    header = ["dataset", "n", "metric", *specs]
    header += [f"{other} − {specs[0]}" for other in specs[1:]]
    header += ["majority", "chance"]
    rows = []
    for entry in results["datasets"]:
        name = entry["dataset"] + (" [off-domain]" if entry["off_domain"] else "")
        name += " [too small]" if entry.get("too_small") else ""
        for metric in _metrics(entry):
            row = [name, str(entry["n"]), metric_label(metric)]
            for spec in specs:
                m = entry["models"].get(spec)
                if m is None or metric not in m:
                    row.append("-")
                    continue
                ci = m.get(f"{metric}_ci")
                row.append(f"{m[metric]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            for other in specs[1:]:
                differences = entry.get("differences") or {specs[1]: entry.get("difference", {})}
                d = differences.get(other, {}).get(metric)
                row.append(f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d else "-")
            b = entry.get("baselines", {})
            key = "accuracy" if metric.startswith("accuracy") else "macro_f1"
            row += [f"{b[f'majority_{key}']:.3f}", f"{b[f'chance_{key}']:.3f}"] if b and key in metric else ["-", "-"]
            rows.append(row)
        if entry["kind"] == "classification":
            for v in ("", *CALIBRATED):
                row = [name, str(entry["n"]), metric_label(f"predicted{v}")]
                for spec in specs:
                    counts = entry["models"].get(spec, {}).get(f"predicted{v}")
                    row.append(predicted_text(counts, entry.get("labels", [])) if counts is not None else "-")
                if any(c != "-" for c in row[3:]):
                    row += ["-"] * (len(header) - len(row))
                    gold = predicted_text(entry.get("gold", {}), entry.get("labels", []))
                    row[-2] = f"gold: {gold}" if not v else "-"
                    rows.append(row)
    return header, rows


def headline_text(results: dict[str, Any]) -> str:
    """One line: the headline set's expert − base difference, or why there is none."""
    h = results.get("headline")
    if not h:
        return "no in-domain set of 20 or more items: no headline (hold out more seeds or pass --data)"
    d = h["difference"]
    return f"{h['dataset']} (n={h['n']}) {metric_label(h['metric'])}: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"


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
