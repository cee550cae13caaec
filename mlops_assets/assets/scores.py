"""``scores`` [region x week]: the forecast for every store x product, by the region's champion."""

import dagster as dg
import pandas as pd

from mlops_assets.ml import quantiles
from mlops_assets.ml.ensemble import BASELINE_VERSION, baseline_forecast
from mlops_assets.partitions import REGION, split_key
from mlops_assets.registry.tracking import CHAMPION, registered_name
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource


def baseline_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Every row forecast by the historical average, in the columns a champion's scores have."""
    out = features[["region", "week_start", "store_id", "product_id", "segment"]].copy()
    out["forecast"] = baseline_forecast(features)
    out[list(quantiles.NAMES)] = quantiles.poisson(out["forecast"].to_numpy())
    out["model"] = "baseline"
    out["model_version"] = BASELINE_VERSION
    out["model_as_of_week"] = pd.NaT
    out["mlflow_run_id"] = ""
    out["model_age_days"] = 0
    return out.astype({"model_as_of_week": "datetime64[ns]", "model_age_days": "int64"})


def model_age_days(week_start: pd.Series, as_of_week: str) -> pd.Series:
    """Days between the last week a model was trained on and the week it forecasts."""
    return (pd.to_datetime(week_start) - pd.Timestamp(as_of_week)).dt.days


def build_scores(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="scores",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # lineage only: what scores is the registry's champion, not the latest training
        deps=[dg.AssetDep("region_model", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
            partition_dimension_name=REGION))],
        ins={"features": dg.AssetIn()},
        group_name="models",
        io_manager_key="parquet_io_manager",
        check_specs=[dg.AssetCheckSpec("model_not_stale", asset="scores", partitions_def=partitions_def,
                                       description="The champion that made the forecasts was trained on data at "
                                                   "most N days (default 60) before the week it forecasts."),
                     dg.AssetCheckSpec("champion_serves", asset="scores", partitions_def=partitions_def,
                                       description="The region's champion made the forecasts; ERROR when the "
                                                   "historical-average baseline had to serve instead.")],
        description="Batch forecasts per store x product for the week by the region's champion "
                    "(models:/demand-forecast-{region}@champion), with the model version, its MLflow run and "
                    "its age. Scoring the next unobserved week is the normal weekly use.",
        kinds={"pandas", "parquet", "mlflow"},
    )
    def scores(context: dg.AssetExecutionContext, features: pd.DataFrame, mlflow: MlflowRegistryResource):
        regions = {split_key(k)[0] for k in context.partition_keys}
        if len(regions) != 1:
            raise ValueError(f"scores: one region per run (got {sorted(regions)}); launch one run per region")
        [region] = regions
        registry = mlflow.registry
        champion = registry.champion(region)
        model, problem = None, None
        if champion is None:
            problem = (f"{registered_name(region)} has no {CHAMPION} (train the region and pass its gates, or "
                       f"mlops-assets promote {region} VERSION)")
        else:
            try:
                model = registry.load_forecast_model(champion)
            except Exception as exc:  # noqa: BLE001 - any load failure must not leave the region without forecasts
                problem = f"{champion.uri} could not be loaded: {type(exc).__name__}: {exc}"
        if model is None:
            # a region never goes without forecasts: the historical average serves, marked, and an alert goes out
            out = baseline_scores(features)
            context.log.error(f"scores {region}: {problem}; forecasting with the historical-average baseline")
            yield dg.Output(out, metadata={"rows": len(out), "model_version": BASELINE_VERSION,
                                           "rows_by_baseline": len(out), "forecast_total": float(out["forecast"].sum()),
                                           "p10_total": float(out["p10"].sum()), "p90_total": float(out["p90"].sum()),
                                           "fallback_reason": problem})
            yield dg.AssetCheckResult(check_name="model_not_stale", passed=True, severity=dg.AssetCheckSeverity.WARN,
                                      description="no model to age: the baseline served")
            yield dg.AssetCheckResult(check_name="champion_serves", passed=False,
                                      severity=dg.AssetCheckSeverity.ERROR, description=problem)
            return
        out = model.predict(features)
        out["mlflow_run_id"] = champion.run_id
        out["model_age_days"] = model_age_days(out["week_start"], model.as_of_week).astype("int64")
        forecast = out["forecast"]
        oldest = int(out["model_age_days"].max()) if len(out) else 0
        yield dg.Output(out, metadata={
            "rows": len(out),
            "model_version": model.version,
            "mlflow_run_id": champion.run_id,
            "model_as_of_week": model.as_of_week,
            "model_age_days": oldest,
            "forecast_total": float(forecast.sum()),
            "forecast_mean": float(forecast.mean()) if len(out) else 0.0,
            # what stocking every row to its P10 or its P90 ships in all
            "p10_total": float(out["p10"].sum()),
            "p90_total": float(out["p90"].sum()),
            "rows_by_baseline": int((out["model"] == "baseline").sum()),
        })
        yield dg.AssetCheckResult(
            check_name="model_not_stale", passed=oldest <= mlflow.stale_after_days,
            severity=dg.AssetCheckSeverity.WARN,
            description=(f"model {model.version} trained on data up to {model.as_of_week}, {oldest} days before "
                         f"the latest week it scores (limit {mlflow.stale_after_days})"),
            metadata={"model_age_days": oldest, "limit_days": mlflow.stale_after_days,
                      "model_version": model.version})
        yield dg.AssetCheckResult(check_name="champion_serves", passed=True, severity=dg.AssetCheckSeverity.ERROR,
                                  description=f"{model.version} served")

    return scores
