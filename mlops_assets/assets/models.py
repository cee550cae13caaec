"""``region_model`` [region]: four segment ensembles and the baseline, evaluated on a holdout."""

import functools
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.config import REPO_ROOT
from mlops_assets.contract.validation import TABLES, file_digest
from mlops_assets.locations import blob_uri, url
from mlops_assets.ml import code_version
from mlops_assets.ml.ensemble import MEMBERS, SEGMENTS, ForecastModel, TrainConfig, train_region
from mlops_assets.ml.featurize import KEY
from mlops_assets.ml.metrics import METRICS
from mlops_assets.monitoring.monitor import reference_profile
from mlops_assets.partitions import REGION, latest_materializations, region_partitions
from mlops_assets.registry import gates
from mlops_assets.registry.lineage import write_snapshot
from mlops_assets.registry.tracking import registered_name
from mlops_assets.resources.landing_folder import LandingResource
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import ALLOW_MISSING, StorageResource, partition_file

MAPE_TARGET = gates.GateConfig().mape_target
class TrainingConfig(dg.Config):
    holdout_weeks: int = 13
    seed: int = 0
    as_of_week: str | None = None  # default: the latest observed week
    # the network and the LASSOs fit side by side in threads; 0: as many as the cores, at most 2.
    # `mlops-assets run` sets MLOPS_TRAIN_THREADS here, and 1 where regions train side by side
    threads: int = 0


def _num(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def metric_items(evaluation: dict) -> Iterator[tuple[str, str | None, str, float]]:
    """Every metric of an evaluation as (scope, member, metric, value): the region first, then each
    trained segment; the MAPE reduction against the baseline comes with member None."""
    scopes = [("region", evaluation["region"])] if "region" in evaluation else []
    scopes += [(name, report) for name, report in evaluation["segments"].items() if "skipped" not in report]
    for scope, report in scopes:
        for member in MEMBERS:
            for metric in METRICS:
                yield scope, member, metric, report[member].get(metric, float("nan"))
        yield scope, None, "mape_reduction_vs_baseline", report["mape_reduction_vs_baseline"]
        for metric, value in report.get("quantiles", {}).items():  # the ensemble's P10/P50/P90 band
            yield scope, "band", metric, value


METRIC_LEGEND = ("MAPE: mean absolute percentage error over rows with actual > 0 (target <= 0.45). "
                 "WAPE: total absolute error / total actual. RMSE (actual = 0): root mean squared error over "
                 "rows whose actual is 0, i.e. units forecast for shelves that sold nothing (`rmse0` in MLflow). "
                 "Bias: mean forecast - actual (> 0 over-forecasts); bias % : total forecast / total actual - 1. "
                 "Reduction: 1 - ensemble MAPE / baseline MAPE.")


def segment_table(evaluation: dict) -> str:
    """Every segment's members in one table, the region's totals last, then what the columns mean."""
    lines = ["| segment | model | MAPE | WAPE | RMSE (actual = 0) | RMSE | bias | bias % | reduction vs baseline "
             "| below P10 / P50 / P90 | rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    scopes = [(name, evaluation["segments"].get(name, {})) for name in SEGMENTS]
    if "region" in evaluation:
        scopes.append(("**region**", evaluation["region"]))
    for name, report in scopes:
        if "skipped" in report:
            lines.append(f"| {name} | skipped: {report['skipped']} | | | | | | | | | |")
            continue
        for member in (*MEMBERS, "last_value"):
            m = report.get(member)
            if not m:
                continue
            reduction = band = ""
            if member == "ensemble":
                if report.get("mape_reduction_vs_baseline") is not None:
                    reduction = f"{report['mape_reduction_vs_baseline']:.0%}"
                q = report.get("quantiles") or {}
                if "below_p10" in q:
                    band = f"{q['below_p10']:.2f} / {q['below_p50']:.2f} / {q['below_p90']:.2f}"
            lines.append(f"| {name} | {member} | {m['mape']:.3f} | {m.get('wape', float('nan')):.3f} | "
                         f"{m['rmse0']:.2f} | {m['rmse']:.2f} | {m['bias']:+.2f} | "
                         f"{m.get('bias_ratio', float('nan')):+.1%} | {reduction} | {band} | {m['rows']} |")
    return "\n".join(lines) + "\n\n" + METRIC_LEGEND + BAND_LEGEND


BAND_LEGEND = (" Below P10 / P50 / P90: the share of holdout actuals under the ensemble's 10th, 50th and 90th "
               "percentile forecasts (nominal 0.10 / 0.50 / 0.90).")


# the figures a person looks for first, in this order; each numeric one is plotted over the
# region's materializations (the UI plots numeric entries, alphabetically: so only these few)
ENSEMBLE_MAPE, BASELINE_MAPE, REDUCTION = "ensemble MAPE", "baseline MAPE", "MAPE reduction vs baseline"
GATE_VERDICT, CHAMPION_VERSION, REGISTERED_VERSION = gates.VERDICT_ENTRY, gates.CHAMPION_ENTRY, gates.VERSION_ENTRY


def key_figures(model: ForecastModel) -> dict:
    """The region's holdout MAPEs and the reduction (absent when no segment trained)."""
    region = model.evaluation.get("region", {})
    if not region:
        return {}
    figures = {ENSEMBLE_MAPE: _num(region["ensemble"]["mape"]), BASELINE_MAPE: _num(region["baseline"]["mape"]),
               REDUCTION: _num(region["mape_reduction_vs_baseline"])}
    return {k: v for k, v in figures.items() if v is not None}


def model_metadata(model: ForecastModel) -> dict:
    """The detail after the key figures: every segment and member in one table, the protocol, the
    hyperparameters."""
    ev = model.evaluation
    meta: dict = {"metrics by segment": dg.MetadataValue.md(segment_table(ev))}
    meta["as-of week"] = model.as_of_week
    meta["holdout"] = f"{ev['holdout']['weeks']} weeks from {ev['holdout']['first_week']}, forecast one week ahead"
    meta["segments"] = (f"{len(model.segments)} trained" +
                        (f", {len(model.skipped)} skipped: " + "; ".join(f"{k}: {v}" for k, v in model.skipped.items())
                         if model.skipped else ""))
    meta["hyperparameters"] = dg.MetadataValue.json(
        {"config": model.config.to_json(),
         "segments": {n: r.get("hyperparameters", r) for n, r in ev["segments"].items()}})
    return meta


# gate -> the asset check that shows it
GATE_CHECKS = {"data": "data_validation", "training": "training_validation", "scoring": "scoring_validation",
               "performance": "performance"}
GATE_DESCRIPTIONS = {
    "data": "Training features pass their schema; every trained segment had enough rows; no training row "
            "lacks its target.",
    "training": "Every segment trained or skipped with a reason; all weights finite; each network's "
                "validation loss improved on its start.",
    "scoring": "The registered model, loaded back from the MLflow registry, reproduces the in-memory "
               "forecasts of the holdout rows exactly.",
    "performance": f"Per segment ensemble MAPE <= {MAPE_TARGET} and below the baseline's; for the region, MAPE "
                   "below last week's demand, WAPE below the baseline's, the forecast total within 15% of demand "
                   "(or no more biased than the baseline), the P10/P50/P90 coverage within 0.15 of nominal (or "
                   "no worse than the baseline's), and MAPE not worse than the champion's by more than the "
                   "tolerance.",
}


ML_CODE_VERSION = code_version()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def training_params(model: ForecastModel) -> dict:
    params = {f"config.{k}": v for k, v in model.config.to_json().items()}
    params["as_of_week"] = model.as_of_week
    params["holdout_first_week"] = model.evaluation["holdout"]["first_week"]
    for name, report in model.evaluation["segments"].items():
        key = name.replace("/", "_")
        if "skipped" in report:
            params[f"{key}.skipped"] = report["skipped"]
            continue
        params[f"{key}.rows_train"] = report["rows"]["train"]
        params[f"{key}.rows_holdout"] = report["rows"]["holdout"]
        for hp, value in report["hyperparameters"].items():
            params[f"{key}.{hp}"] = value
    return params


def training_metrics(model: ForecastModel) -> dict:
    """MLflow metric names: ``large_fast.ensemble.mape``, ``region.mape_reduction_vs_baseline``."""
    return {".".join(p for p in (scope.replace("/", "_"), member, metric) if p): value
            for scope, member, metric, value in metric_items(model.evaluation)}


def lineage_document(instance: dg.DagsterInstance, landing: LandingResource, storage: StorageResource,
                     region: str, weeks: list[str],
                     snapshot: str, digest: str, rows: int) -> dict:
    """What the training frame came from: feature partitions (with data versions), conditioned
    tables (with the raw data versions they were built from) and the landing files' hashes."""
    key = dg.AssetKey("features")
    records = latest_materializations(instance, key, [f"{region}|{w}" for w in weeks]).values()
    # the run that wrote each partition and its Dagster data version (one per run for a range run),
    # and the sha256 of the partition's file: the content itself
    partitions = {r.asset_materialization.partition: {
        "run_id": r.run_id, "storage_id": r.storage_id,
        "data_version": r.asset_materialization.tags.get("dagster/data_version"),
        "file_sha256": file_digest(storage.path / partition_file(key, r.asset_materialization.partition))}
        for r in records}
    tables, raw = {}, {}
    for table in TABLES:
        event = instance.get_latest_materialization_event(dg.AssetKey(table))
        tags = event.asset_materialization.tags if event else {}
        built_from = tags.get(f"dagster/input_data_version/raw_{table}")
        tables[table] = {"run_id": event.run_id if event else None, "data_version": tags.get("dagster/data_version"),
                         "raw_data_version": built_from}
        raw[table] = {"data_version": landing.data_version(table), "files": landing.fingerprint(table),
                      "same_as_table_input": built_from == landing.data_version(table)}
    return {"region": region,
            "training_data": {"path": snapshot, "digest": digest, "rows": rows, "first_week": min(weeks),
                              "last_week": max(weeks)},
            "feature_partitions": dict(sorted(partitions.items())),
            "tables": tables, "raw_files": raw}


@dg.asset(
    partitions_def=region_partitions,
    pool="training",  # production caps concurrent trainings per instance (deploy/dagster.prod.yaml)
    ins={"features": dg.AssetIn(
        partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=REGION),
        metadata={ALLOW_MISSING: True})},
    group_name="models",
    io_manager_key="model_io_manager",
    code_version=ML_CODE_VERSION,
    # partitioned like the asset: each result names its region in the check's history
    check_specs=[dg.AssetCheckSpec(GATE_CHECKS[gate], asset="region_model", blocking=True, description=text,
                                   partitions_def=region_partitions)
                 for gate, text in GATE_DESCRIPTIONS.items()],
    description="Per segment (format x velocity) a LASSO + embedding-network ensemble, evaluated one week "
                "ahead on the last holdout weeks against the trailing 52-week-mean baseline, then refit on "
                "every week up to the as-of week. Each materialization is one MLflow run and one registered "
                "version of demand-forecast-{region}; it becomes the champion only through its gates.",
    kinds={"scikitlearn", "pytorch", "mlflow"},
)
def region_model(context: dg.AssetExecutionContext, config: TrainingConfig, features: pd.DataFrame,
                 storage: StorageResource, mlflow: MlflowRegistryResource, landing: LandingResource):
    region = context.partition_key
    train_config = TrainConfig(holdout_weeks=config.holdout_weeks, seed=config.seed)
    # a line per stage and member in the run's log as it happens: a long training shows where it is
    context.log.info(f"{region}: training on {len(features):,} feature rows, holdout {config.holdout_weeks} weeks")
    model, holdout = train_region(features, region, train_config, as_of_week=config.as_of_week,
                                  progress=lambda line: context.log.info(f"{region} {line}"),
                                  profiler=reference_profile, threads=config.threads)
    storage.write_parquet(f"holdout_forecasts/{region}/{context.run.run_id}.parquet", holdout)

    # exactly the rows the deployed model was fit on (and evaluated with), kept immutably
    observed = features[features["target"].notna() & (features["week_start"] <= pd.Timestamp(model.as_of_week))]
    observed = observed.sort_values(KEY, kind="stable").reset_index(drop=True)
    snapshot, digest = write_snapshot(storage, region, observed)
    weeks = sorted(observed["week_start"].dt.strftime("%Y-%m-%d").unique())
    lineage = lineage_document(context.instance, landing, storage, region, weeks, snapshot, digest, len(observed))
    holdout_rows = observed[observed["week_start"] >= pd.Timestamp(model.evaluation["holdout"]["first_week"])]
    if holdout_rows.empty:  # a region too young to hold weeks out: its model (the baseline) is checked on its rows
        holdout_rows = observed

    registry = mlflow.registry
    tags = {"dagster_run_id": context.run.run_id, "dagster_asset_key": "region_model", "dagster_partition": region,
            "code_version": ML_CODE_VERSION, "git_commit": git_commit(), "region": region,
            "as_of_week": model.as_of_week, "training_data_digest": digest}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        release = registry.log_training(
            region, Path(tmp) / "model", holdout_rows.head(5).reset_index(drop=True), training_params(model),
            training_metrics(model), tags,
            {"frame": observed, "digest": digest, "source": blob_uri(storage.path / snapshot),
             "name": f"features-{region}"},
            {"lineage.json": lineage, "evaluation.json": json.loads(json.dumps(model.evaluation, default=float))})
    model.version = f"{registered_name(region)}/{release.version}"

    context.log.info(f"{region}: logged MLflow run {release.run_id}, registered {model.version}; running the gates")
    # the model's folder is written before anything is promoted: a run killed while writing it has
    # changed no champion (the IO manager then only moves current.json, if the gates pass)
    storage.save_model(f"region_model/{region}/{context.run.run_id}", model)
    # the gates: what the registry serves must be what was validated
    reloaded = registry.load_forecast_model(release)
    # read the champion, compare, promote: one step per region (two trainings at once cannot both promote)
    with registry.champion_decision(region):
        champion = registry.champion(region)
        champion_model = registry.load_forecast_model(champion) if champion else None
        comparison = gates.champion_comparison(model, champion_model)
        results = {
            "data": gates.data_gate(observed, model),
            "training": gates.training_gate(model),
            "scoring": gates.scoring_gate(model.predict(holdout_rows), reloaded.predict(holdout_rows)),
            "performance": gates.performance_gate(model, comparison, mlflow.gate_config),
        }
        verdict = gates.verdict(results, mlflow.mode)
        registry.record_verdict(release, verdict)
        promoted = mlflow.mode == "enforce" and verdict["passed"]
        if promoted:
            registry.promote(region, release.version, by="gate",
                             reason=f"passed all gates in Dagster run {context.run.run_id}")
    serving = release if promoted else champion
    model.gates_passed = verdict["passed"]  # the IO manager moves current.json only to a model that passed

    yield dg.Output(model, metadata={
        **key_figures(model),
        GATE_VERDICT: "passed" if verdict["passed"] else "failed: " + "; ".join(
            f"{GATE_CHECKS[g]}" for g, r in results.items() if not r["passed"]),
        CHAMPION_VERSION: int(serving.version) if serving else "none",
        REGISTERED_VERSION: int(release.version),
        "promoted": promoted,
        **model_metadata(model),
        "registered model": registered_name(region),
        "mlflow run": release.run_id,
        "promotion mode": mlflow.mode,
        "training data": dg.MetadataValue.path(url(storage.path / snapshot)),
        "training data digest": digest,
    })
    for gate, result in results.items():
        details = {k: v for k, v in result.items() if k not in ("passed", "reason")}
        yield dg.AssetCheckResult(check_name=GATE_CHECKS[gate], passed=result["passed"],
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  description=f"{region}: {result['reason']}",
                                  metadata={"region": region, "reason": result["reason"],
                                            "details": dg.MetadataValue.json(
                                                json.loads(json.dumps(details, default=str))),
                                            "registered_version": int(release.version)})
