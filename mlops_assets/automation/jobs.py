"""Jobs: what the schedules, sensors and the CLI run."""

from __future__ import annotations

import dagster as dg

OBSERVE_LANDING = "observe_landing"
TABLES = "tables"
WEEKLY = "weekly"
TRAINING = "training"
SCORING = "scoring"
ALERTING = "alerting"

observe_landing_job = dg.define_asset_job(
    OBSERVE_LANDING, selection=dg.AssetSelection.groups("raw", include_sources=True),
    description="Hash the landing files: new data versions mark downstream assets stale.")
tables_job = dg.define_asset_job(
    TABLES, selection=dg.AssetSelection.groups("tables"),
    description="Validate every landing table against the contract; quarantine bad rows.")
weekly_job = dg.define_asset_job(
    WEEKLY, selection=dg.AssetSelection.groups("conditioned", "features")
    | dg.AssetSelection.assets("drift_metrics", "forecast_accuracy"),
    description="Condition region x week tables, build features, and monitor the weeks: drift and, where a "
                "week was scored and its actuals are in, realized accuracy. Launch a range of weeks of one region "
                "as one run.")
training_job = dg.define_asset_job(
    TRAINING, selection=dg.AssetSelection.assets("region_model"),
    description="Train and evaluate a region's model (one run per region); it serves only through its gates.")
scoring_job = dg.define_asset_job(
    SCORING, selection=dg.AssetSelection.assets("weekly_weather", "weekly_events", "features", "scores",
                                                "drift_metrics"),
    description="Forecast the coming week of a region with its champion (or the baseline, with an alert), from "
                "the latest weather forecast and events, and measure its drift.")
alerting_job = dg.define_asset_job(
    ALERTING, selection=dg.AssetSelection.assets("alerts", "monitoring_dashboard"),
    description="Collect the open alerts of every region, and rebuild the persona dashboards.")

ALL_JOBS = [observe_landing_job, tables_job, weekly_job, training_job, scoring_job, alerting_job]
