"""What ``mlops-assets run`` tells: the summary it prints and its ``--json`` report."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from mlops_assets.app.execution import RunSummary
from mlops_assets.ml import quantiles
from mlops_assets.ml.ensemble import MEMBERS
from mlops_assets.ml.metrics import METRICS


def holdout_totals(holdout: pd.DataFrame) -> dict:
    """Sums over a region's holdout forecasts from which the figures of several regions pooled
    follow: rows, demand, forecast, absolute error, and the actuals below each quantile."""
    actual, forecast = holdout["target"].to_numpy(dtype=float), holdout["ensemble"].to_numpy(dtype=float)
    out = {"rows": len(holdout), "actual": float(actual.sum()), "forecast": float(forecast.sum()),
           "abs_error": float(np.abs(forecast - actual).sum())}
    for name, level in zip(quantiles.NAMES, quantiles.LEVELS):
        if name in holdout:
            q = holdout[name].to_numpy(dtype=float)
            out[f"below_{name}"] = int((actual < q).sum())
            out[f"pinball_{name}"] = quantiles.pinball(actual, q, level) * len(holdout)
    return out


def pooled(totals: list[dict]) -> dict:
    """All regions' holdout rows as one: WAPE, bias (total forecast / total demand - 1), the share
    of actuals below P10, P50 and P90 and their pinball losses."""
    rows, actual = sum(t["rows"] for t in totals), sum(t["actual"] for t in totals)
    if not rows:
        return {}
    out = {"rows": rows, "wape": sum(t["abs_error"] for t in totals) / actual if actual else None,
           "bias_ratio": sum(t["forecast"] for t in totals) / actual - 1 if actual else None}
    for name in quantiles.NAMES:
        if all(f"below_{name}" in t for t in totals):
            out[f"below_{name}"] = sum(t[f"below_{name}"] for t in totals) / rows
            out[f"pinball_{name}"] = sum(t[f"pinball_{name}"] for t in totals) / rows
    return out


def _no_nan(value):
    """The report as strict JSON: a number that does not exist (NaN, infinity) is null."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(summary: RunSummary) -> dict:
    """The ``--json`` report: per region, per segment, every member's metrics or the skip reason."""
    out = {"regions": {}}
    for region, model in summary.models.items():
        region_eval = model["evaluation"].get("region", {})
        out["regions"][region] = {
            "model_version": model["model_version"],
            "mlflow_run_id": model["mlflow_run_id"],
            "gate_verdict": model["gate_verdict"],
            "failed_gates": model["failed_gates"],
            "promoted": model["promoted"],
            "champion_version": model["champion_version"],
            "as_of_week": model["as_of_week"],
            "holdout_first_week": model["evaluation"]["holdout"]["first_week"],
            "scored_week": model.get("scored_week"),
            "segments": model["segments"],
            "region": {m: {k: region_eval[m].get(k) for k in METRICS} for m in MEMBERS if m in region_eval}
            | ({"mape_reduction_vs_baseline": region_eval["mape_reduction_vs_baseline"]} if region_eval else {})
            | {k: region_eval[k] for k in ("quantiles", "baseline_quantiles") if k in region_eval},
        }
    out["pooled"] = pooled([m["holdout_totals"] for m in summary.models.values() if "holdout_totals" in m])
    out["drift"] = {r: rep["drift"] for r, rep in summary.replay.items()}
    out["levels"] = {r: rep["levels"] for r, rep in summary.replay.items()}
    # each region's demand against the other regions' (monitoring.regional), week by week
    out["regional"] = {r: rep.get("regional", {}) for r, rep in summary.replay.items()}
    out["accuracy"] = {r: rep["accuracy"] for r, rep in summary.replay.items()}
    out["alerts"] = [a for rep in summary.replay.values() for a in rep["alerts"]]
    out["retrain_requests"] = [q for rep in summary.replay.values() for q in rep["retrain_requests"]]
    return _no_nan(out)


def replay_table(summary: RunSummary) -> str:
    """Per region and holdout week: the signals that moved when the week was forecast and once its
    actuals were in (and the stores that were closed), demand against its reference (the level
    signal) and against the other regions' (the regional signal), the forecasts' bias, realized
    MAPE against the baseline, and the retrain requests the sensors would have made."""
    lines = ["replay of the holdout weeks (each forecast by the model fit before them, monitored, then evaluated):"]
    for region, rep in summary.replay.items():
        rows = []
        for week, ahead in rep["drift"].items():
            after, acc = rep["levels"].get(week, {}), rep["accuracy"][week]
            demand, compared = after.get("demand"), rep.get("regional", {}).get(week, {})
            others = compared.get("regional")
            flagged = ", ".join(sorted({*ahead["signals"], *after.get("signals", []),
                                        *compared.get("signals", [])})) or "-"
            if after.get("closed_stores"):  # named, left out of the demand signal, never flagged
                flagged += f" (closed: {', '.join(after['closed_stores'])})"
            rows.append({"region": region, "week": week, "flagged": flagged,
                         "demand vs reference": "-" if demand is None else
                         f"{demand['change']:+.0%} (z {demand['z']:+.1f}/{demand['limit']:.1f})",
                         "vs other regions": "-" if others is None else
                         f"{others['change']:+.0%} (z {others['z']:+.1f}/{others['limit']:.1f})",
                         "bias": "-" if after.get("bias") is None else f"{after['bias']:+.0%}",
                         "MAPE": _fmt(acc["mape"]), "baseline": _fmt(acc["baseline_mape"]),
                         "degradation": _fmt(acc["degradation"], 2)})
        lines.append(pd.DataFrame(rows).to_string(index=False))
        requests = rep["retrain_requests"]
        lines.append(f"  {region}: " + ("; ".join(f"would retrain in week {q['week']} ({q['reason']}: {q['detail']})"
                                              for q in requests) if requests else "no retraining needed"))
    return "\n".join(lines)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _models_table(summary: RunSummary) -> str:
    rows = []
    for region, model in summary.models.items():
        for segment, report in model["segments"].items():
            if "skipped" in report:
                rows.append({"region": region, "segment": segment, "ensemble": "skipped: " + report["skipped"]})
                continue
            rows.append({"region": region, "segment": segment, **_model_row(report)})
        region_eval = model["evaluation"].get("region")
        if region_eval:
            rows.append({"region": region, "segment": "(all)", **_model_row(region_eval)})
    table = pd.DataFrame(rows).fillna("")
    lines = ["holdout MAPE (actual > 0), one week ahead; the ensemble's bias (total forecast / total demand - 1) "
             "and the share of actuals below its P10 / P50 / P90 (nominal 0.10 / 0.50 / 0.90):",
             table.to_string(index=False)]
    both = pooled([m["holdout_totals"] for m in summary.models.values() if "holdout_totals" in m])
    if both and len(summary.models) > 1 and "below_p10" in both:
        lines.append(f"all regions pooled: WAPE {both['wape']:.3f}, bias {both['bias_ratio']:+.1%}, below P10 / P50 / "
                     f"P90 {both['below_p10']:.2f} / {both['below_p50']:.2f} / {both['below_p90']:.2f}")
    return "\n".join(lines)


def _model_row(report: dict) -> dict:
    q = report.get("quantiles") or {}
    return {**{m: round(report[m]["mape"], 3) for m in MEMBERS},
            "reduction": f"{report['mape_reduction_vs_baseline']:.0%}",
            "bias": f"{report['ensemble'].get('bias_ratio', float('nan')):+.1%}",
            "P10/P50/P90": (f"{q['below_p10']:.2f}/{q['below_p50']:.2f}/{q['below_p90']:.2f}"
                            if "below_p10" in q else "")}


def format_summary(summary: RunSummary) -> str:
    lines = [f"landing {summary.landing}: weeks {summary.first_week} .. {summary.last_week}", ""]
    regions = pd.DataFrame.from_dict(summary.regions, orient="index")
    regions.index.name = "region"
    lines.append(regions.to_string())
    lines.append("")
    tables = pd.DataFrame.from_dict(summary.tables, orient="index")
    tables.index.name = "table"
    lines.append(tables.to_string())
    if summary.models:
        lines.append("")
        lines.append(_models_table(summary))
        lines.append("")
    if summary.replay:
        lines.append(replay_table(summary))
        lines.append("")
    for region, model in summary.models.items():
        verdict = model["gate_verdict"]
        line = (f"{region}: trained {model['model_version']} (MLflow run {model['mlflow_run_id']}), gates {verdict}"
                f"; champion {model['champion_version']}" + (" (promoted now)" if model["promoted"] else ""))
        lines.append(line)
        for gate, reason in model["failed_gates"].items():
            lines.append(f"  failed {gate}: {reason}")
        if model["champion_version"] != "none":
            lines.append(f"  scored week {model['scored_week']} with the champion")
        else:
            lines.append(f"  scored week {model['scored_week']} with the historical-average baseline: no champion "
                         "(alert raised; see mlops-assets status)")
    quarantined = sum(t["quarantined"] for t in summary.tables.values())
    lines.append("")
    lines.append(f"{quarantined} rows quarantined" + (" (see mlops-assets validate, and <storage>/quarantine/)"
                                                      if quarantined else ""))
    lines.append(f"{len(summary.run_ids)} Dagster runs, {sum(t for _, t in summary.timings):.1f} s, "
                 f"in {os.environ.get('DAGSTER_HOME')}: "
                 "`mlops-assets ui` shows them")
    return "\n".join(lines)
