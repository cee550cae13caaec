"""``scores`` [region x week]: the forecast for every store x product, traceable to its model."""

import dagster as dg
import pandas as pd

from mlops_assets.ml.ensemble import ForecastModel
from mlops_assets.partitions import REGION, split_key


def build_scores(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="scores",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        ins={"region_model": dg.AssetIn(
                 partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=REGION)),
             "features": dg.AssetIn()},
        group_name="models",
        io_manager_key="parquet_io_manager",
        description="Batch forecasts per store x product for the week, with the model version that made "
                    "them. Scoring the next unobserved week is the normal weekly use.",
        kinds={"pandas", "parquet"},
    )
    def scores(context: dg.AssetExecutionContext, region_model: ForecastModel, features: pd.DataFrame):
        regions = {split_key(k)[0] for k in context.partition_keys}
        if len(regions) != 1:
            raise ValueError(f"scores: one region per run (got {sorted(regions)}); launch one run per region")
        out = region_model.predict(features)
        forecast = out["forecast"]
        yield dg.Output(out, metadata={
            "rows": len(out),
            "model_version": region_model.version,
            "model_as_of_week": region_model.as_of_week,
            "forecast_total": float(forecast.sum()),
            "forecast_mean": float(forecast.mean()) if len(out) else 0.0,
            "forecast_p50": float(forecast.median()) if len(out) else 0.0,
            "forecast_p90": float(forecast.quantile(0.9)) if len(out) else 0.0,
            "rows_by_baseline": int((out["model"] == "baseline").sum()),
        })

    return scores
