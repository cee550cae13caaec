"""Validation gates a candidate region model must pass before it may serve.

Pure functions over frames and models (no Dagster, no MLflow): each returns
``{"passed": bool, "reason": str, ...details}``. The ``region_model`` asset runs them,
shows each as a blocking asset check, records them on the registered version, and
moves the champion only when all pass (in ``enforce`` mode).

- data: the training features pass their schema, every trained segment had enough
  rows, and nothing is missing where the schema allows no gap (the target of a training row);
- training: every segment trained or skipped with a reason, all weights finite, and each
  network's validation loss improved on its starting loss;
- scoring: the model loaded back from the registry reproduces the in-memory forecasts exactly;
- performance: per trained segment, ensemble MAPE <= target and below the baseline's; for the
  region, MAPE below the last-value forecast's (a model that cannot beat "same as last week"
  has not earned its place), WAPE below the baseline's, RMSE on actual = 0 not far worse than the
  baseline's, the forecast total within ``bias_limit`` of the demand total (what a planner ships
  against what sells) or no farther than the baseline's, and the P10/P50/P90 band's coverage
  within ``coverage_tolerance`` of nominal or no farther than the baseline's band; and the
  region's MAPE not worse than the champion's (each on its own holdout: ``champion_comparison``)
  by more than the tolerance (relative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.config import DEFAULT_BIAS_LIMIT, DEFAULT_CHAMPION_TOL, DEFAULT_COVERAGE_TOL, PROMOTION_MODES
from mlops_assets.contract import schemas
from mlops_assets.ml import quantiles
from mlops_assets.ml.ensemble import SEGMENTS, ForecastModel

GATES = ("data", "training", "scoring", "performance")


# the entries of a region_model materialization's metadata that say what the gates decided
VERDICT_ENTRY, CHAMPION_ENTRY, VERSION_ENTRY = "gate verdict", "champion version", "registered version"


@dataclass(frozen=True)
class GateConfig:
    mape_target: float = 0.45
    champion_tolerance: float = DEFAULT_CHAMPION_TOL  # relative: 0.02 = the candidate may be 2% worse
    # far worse than the baseline: RMSE on actual = 0 above this multiple of the baseline's
    rmse0_factor: float = 1.5
    # ... judged only over this many holdout rows with actual = 0 or more: over a dozen stock-outs
    # of otherwise steady series it is a coin flip (the tests' 60-week toy: 18 such rows of 845)
    rmse0_min_rows: int = 50
    # |total forecast / total demand - 1| on the holdout: the bundled sample's regions reach 0.042 at
    # most (README), but 13 weeks of a realistic region swing by 0.11 (the loop tests' data, other
    # seeds); a model that ships 15% more or less than sells does not serve, unless the historical
    # average is further off still on the same rows (a change of level nothing fit on the past
    # foresees: promoting the model is then the lesser bias)
    bias_limit: float = DEFAULT_BIAS_LIMIT
    # the share of holdout actuals below P10, P50 and P90 within this of 0.1, 0.5 and 0.9 (on the
    # bundled sample the farthest region is 0.08 off), or no farther than the baseline's band
    coverage_tolerance: float = DEFAULT_COVERAGE_TOL


def _result(problems: list[str], **details) -> dict:
    return {"passed": not problems, "reason": "; ".join(problems) if problems else "ok", **details}


def data_gate(training_rows: pd.DataFrame, model: ForecastModel) -> dict:
    problems = []
    try:
        schemas.features_schema().validate(training_rows, lazy=True)
        failures = 0
    except pa.errors.SchemaErrors as exc:
        failures = len(exc.failure_cases)
        first = exc.failure_cases.iloc[0]
        problems.append(f"{failures} schema failures, e.g. column {first['column']}: {first['check']}")
    missing_target = int(training_rows["target"].isna().sum())
    if missing_target:
        problems.append(f"{missing_target} training rows without a target")
    rows = {}
    for name in SEGMENTS:
        report = model.evaluation["segments"].get(name, {})
        if "rows" in report:
            rows[name] = report["rows"]["train"]
            if report["rows"]["train"] < model.config.min_train_rows:
                problems.append(f"{name}: {report['rows']['train']} training rows < {model.config.min_train_rows}")
    return _result(problems, schema_failures=failures, rows_per_segment=rows, training_rows=len(training_rows))


def training_gate(model: ForecastModel) -> dict:
    problems = []
    missing = [s for s in SEGMENTS if s not in model.segments and s not in model.skipped]
    if missing:
        problems.append(f"segments neither trained nor skipped: {', '.join(missing)}")
    unexplained = [s for s, reason in model.skipped.items() if not reason]
    if unexplained:
        problems.append(f"skipped without a reason: {', '.join(unexplained)}")
    if not model.segments:
        problems.append("no segment trained (" + "; ".join(sorted(set(model.skipped.values()))) + ")")
    losses = {}
    for name, seg in model.segments.items():
        arrays = [np.asarray(v) for v in seg.lasso.values()]
        arrays += [t.detach().numpy() for t in seg.net.state_dict().values() if t.is_floating_point()]
        if not all(np.isfinite(a).all() for a in arrays):
            problems.append(f"{name}: non-finite weights")
        start = seg.hyperparameters.get("nn_start_val_loss", float("nan"))
        best = seg.hyperparameters.get("nn_best_val_loss", float("nan"))
        losses[name] = {"start": start, "best": best}
        if not (np.isfinite(best) and best < start):
            problems.append(f"{name}: network validation loss did not improve ({start:.4g} -> {best:.4g})")
    return _result(problems, trained=sorted(model.segments), skipped=model.skipped, validation_loss=losses)


def scoring_gate(in_memory: pd.DataFrame, reloaded: pd.DataFrame) -> dict:
    """The reloaded model's forecasts must equal the in-memory ones exactly (same rows, same floats)."""
    problems = []
    if len(in_memory) != len(reloaded):
        problems.append(f"{len(reloaded)} forecasts after reload, {len(in_memory)} before")
        differing = None
    else:
        a, b = in_memory["forecast"].to_numpy(), reloaded["forecast"].to_numpy()
        differing = int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())
        if differing:
            problems.append(f"{differing} of {len(a)} forecasts differ after reloading from the registry "
                            f"(max difference {np.nanmax(np.abs(a - b)):.3g})")
    return _result(problems, rows=len(in_memory), differing=differing)


def champion_comparison(model: ForecastModel, champion: ForecastModel | None) -> dict | None:
    """The candidate against the champion, each on its own holdout: the ensemble's region MAPE
    on the weeks after its training data, forecast one week ahead. Neither number has seen the
    answers, and neither model had more recent data than its own holdout allowed. (Comparing on
    the candidate's holdout weeks after the champion's as-of week would pit a candidate fit
    before those weeks against a champion fit up to them: in weekly retraining, 12 weeks more
    recent.) The weeks differ unless both have the same as-of week; the MAPE relative to the
    baseline's on the same rows is recorded beside it, to tell a harder stretch of weeks from a
    worse model. Returns None without a champion."""
    if champion is None:
        return None
    ev, champ_ev = model.evaluation, champion.evaluation
    if champ_ev.get("protocol", 1) != ev.get("protocol", 1):
        # metrics recorded under another evaluation protocol (observed weather, zero-filled
        # history) are not comparable
        return {"basis": "protocol changed", "champion_version": champion.version,
                "note": f"the champion's holdout metrics were recorded under evaluation protocol "
                        f"{champ_ev.get('protocol', 1)}, this candidate's under {ev.get('protocol', 1)}; "
                        f"the candidate is judged on its own gates"}
    if "region" not in champ_ev or "region" not in ev:
        return {"basis": "none", "champion_version": champion.version,
                "note": "no region holdout metrics recorded to compare"}
    same = champion.as_of_week == model.as_of_week and champ_ev.get("holdout") == ev.get("holdout")

    def relative(e: dict) -> float:
        return e["region"]["ensemble"]["mape"] / e["region"]["baseline"]["mape"]

    return {"basis": "same holdout" if same else "each one's holdout",
            "candidate_holdout": ev["holdout"], "champion_holdout": champ_ev.get("holdout"),
            "candidate_mape": ev["region"]["ensemble"]["mape"], "champion_mape": champ_ev["region"]["ensemble"]["mape"],
            "candidate_relative": relative(ev), "champion_relative": relative(champ_ev),
            "champion_version": champion.version}


def performance_gate(model: ForecastModel, comparison: dict | None, config: GateConfig) -> dict:
    problems, per_segment = [], {}
    for name, report in model.evaluation["segments"].items():
        if "skipped" in report:
            continue
        ens, base = report["ensemble"]["mape"], report["baseline"]["mape"]
        per_segment[name] = {"ensemble_mape": ens, "baseline_mape": base}
        if not ens <= config.mape_target:
            problems.append(f"{name}: ensemble MAPE {ens:.3f} > target {config.mape_target}")
        if not ens < base:
            problems.append(f"{name}: ensemble MAPE {ens:.3f} not below the baseline's {base:.3f}")
    if not per_segment:
        problems.append("no trained segment to judge")
    region = model.evaluation.get("region")
    peers = _against_peers(region, config, problems) if region else {}
    details = {"segments": per_segment, "region": peers, "tolerance": config.champion_tolerance,
               "champion": comparison}
    if comparison and comparison.get("basis") == "protocol changed":
        pass  # nothing comparable recorded: the candidate stands on the gates above
    elif comparison and comparison.get("basis") == "none":
        problems.append(f"not comparable with champion {comparison['champion_version']}: {comparison['note']}")
    elif comparison:
        cand, champ = comparison["candidate_mape"], comparison["champion_mape"]
        limit = champ * (1 + config.champion_tolerance)
        if not cand <= limit:
            problems.append(f"region MAPE {cand:.3f} is worse than champion {comparison['champion_version']}'s "
                            f"{champ:.3f} by more than {config.champion_tolerance:.0%} ({comparison['basis']}; "
                            f"relative to the baseline {comparison['candidate_relative']:.3f} against "
                            f"{comparison['champion_relative']:.3f})")
    return _result(problems, **details)


def _against_peers(region: dict, config: GateConfig, problems: list[str]) -> dict:
    """The region's holdout against the naive forecasts and what a planner ships: MAPE below last
    value's, WAPE below the historical average's, RMSE on actual = 0 not far worse than its, the
    total within ``bias_limit`` of demand, and the band's coverage near nominal."""
    ens, base, last = region["ensemble"], region["baseline"], region.get("last_value")
    if last is not None and not ens["mape"] < last["mape"]:
        problems.append(f"region: ensemble MAPE {ens['mape']:.3f} not below last value's {last['mape']:.3f}")
    if "wape" in ens and not ens["wape"] < base["wape"]:
        problems.append(f"region: ensemble WAPE {ens['wape']:.3f} not below the baseline's {base['wape']:.3f}")
    zeros = ens.get("rows0", config.rmse0_min_rows)  # a model of an earlier version: judged as before
    if zeros >= config.rmse0_min_rows and np.isfinite(ens["rmse0"]) and np.isfinite(base["rmse0"]) \
            and ens["rmse0"] > config.rmse0_factor * base["rmse0"]:
        problems.append(f"region: RMSE at actual = 0 {ens['rmse0']:.2f} > {config.rmse0_factor} x the baseline's "
                        f"{base['rmse0']:.2f}")
    bias, base_bias = ens.get("bias_ratio", float("nan")), base.get("bias_ratio", float("nan"))
    bias_limit = max(config.bias_limit, abs(base_bias) if np.isfinite(base_bias) else 0.0)
    if np.isfinite(bias) and abs(bias) > bias_limit:
        problems.append(f"region: the forecasts total {bias:+.1%} against demand, beyond +-{bias_limit:.0%} "
                        f"(limit {config.bias_limit:.0%}, the baseline's {base_bias:+.1%})")
    coverage = {}
    for name, level in zip(quantiles.NAMES, quantiles.LEVELS):
        below = region.get("quantiles", {}).get(f"below_{name}")
        if below is None or not np.isfinite(below):
            continue
        coverage[name] = below
        base_below = region.get("baseline_quantiles", {}).get(f"below_{name}", float("nan"))
        tolerance = max(config.coverage_tolerance, abs(base_below - level) if np.isfinite(base_below) else 0.0)
        if abs(below - level) > tolerance:
            problems.append(f"region: {below:.0%} of actuals below {name.upper()} (nominal {level:.0%}, "
                            f"tolerance {config.coverage_tolerance:.2f}; the baseline's band {base_below:.0%})")
    return {"ensemble_mape": ens["mape"], "last_value_mape": last["mape"] if last else None,
            "ensemble_wape": ens.get("wape"), "baseline_wape": base.get("wape"),
            "rmse0": ens["rmse0"], "baseline_rmse0": base["rmse0"], "bias_ratio": bias,
            "baseline_bias_ratio": base_bias, "bias_limit": bias_limit,
            "below_quantiles": coverage, "coverage_tolerance": config.coverage_tolerance}


def verdict(gates: dict[str, dict], mode: str) -> dict:
    if mode not in PROMOTION_MODES:
        raise ValueError(f"promotion mode {mode!r}: must be one of {', '.join(PROMOTION_MODES)}")
    return {"passed": all(g["passed"] for g in gates.values()), "mode": mode, "gates": gates}
