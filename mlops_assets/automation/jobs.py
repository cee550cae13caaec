"""Jobs: what the schedules, sensors and the CLI run."""

from __future__ import annotations

import dagster as dg

from mlops_assets.contract.validation import TABLES as LANDING_TABLES

TABLE_NAMES = list(LANDING_TABLES)  # each landing table: its raw files (raw_<name>) and its valid rows

OBSERVE_LANDING = "observe_landing"
TABLES = "tables"
WEEKLY = "weekly"
TRAINING = "training"
SCORING = "scoring"
MONITORING = "monitoring"
COMPARISON = "comparison"
ALERTING = "alerting"

observe_landing_job = dg.define_asset_job(
    OBSERVE_LANDING, selection=dg.AssetSelection.assets(*[f"raw_{t}" for t in TABLE_NAMES]),
    description="Hash the landing files: new data versions mark downstream assets stale.")
tables_job = dg.define_asset_job(
    TABLES, selection=dg.AssetSelection.assets(*TABLE_NAMES),
    description="Validate every landing table against the contract; quarantine bad rows.")
weekly_job = dg.define_asset_job(
    WEEKLY, selection=dg.AssetSelection.groups("conditioned", "features"),
    description="Condition region x week tables and build features. Launch a range of weeks of one region as one "
                "run; weeks whose data has not landed are skipped, each with its reason.")
# the coming week's model inputs, a run of the weekly job: its weather forecast, events and features
FORECAST_INPUTS = [dg.AssetKey(k) for k in ("weekly_weather", "weekly_events", "features")]
training_job = dg.define_asset_job(
    TRAINING, selection=dg.AssetSelection.assets("region_model"),
    description="Train and evaluate a region's model (one run per region); it serves only through its gates.")
# scores and monitors are partitioned by the scored weeks (from the first week forecast), so they
# run in jobs of their own: Dagster runs one partitions definition per job
scoring_job = dg.define_asset_job(
    SCORING, selection=dg.AssetSelection.assets("scores", "drift_metrics"),
    description="Forecast a week of a region with its champion (or the baseline, with an alert) from its features "
                "(the weekly job builds them first), and measure the week's drift.")
monitoring_job = dg.define_asset_job(
    MONITORING, selection=dg.AssetSelection.assets("drift_metrics", "forecast_accuracy"),
    description="Monitor observed weeks of a region: drift against the champion's training data and, where a week "
                "was scored, realized accuracy. Launch a range of weeks as one run.")
# partitioned by week alone: every region's week at once, so a job of its own
comparison_job = dg.define_asset_job(
    COMPARISON, selection=dg.AssetSelection.assets("regional_comparison"),
    description="Compare each region's demand with the other regions' in monitored weeks (after their "
                "forecast_accuracy). Launch a range of weeks as one run.")
alerting_job = dg.define_asset_job(
    ALERTING, selection=dg.AssetSelection.assets("alerts", "monitoring_dashboard", "housekeeping"),
    description="Collect the open alerts of every region, rebuild the persona dashboards, and apply the storage "
                "retention.")

ALL_JOBS = [observe_landing_job, tables_job, weekly_job, training_job, scoring_job, monitoring_job, comparison_job,
            alerting_job]
