"""Jobs: what the schedules, sensors and the CLI run."""

from __future__ import annotations

import dagster as dg

OBSERVE_LANDING = "observe_landing"
TABLES = "tables"
WEEKLY = "weekly"
TRAINING = "training"
SCORING = "scoring"

observe_landing_job = dg.define_asset_job(
    OBSERVE_LANDING, selection=dg.AssetSelection.groups("raw", include_sources=True),
    description="Hash the landing files: new data versions mark downstream assets stale.")
tables_job = dg.define_asset_job(
    TABLES, selection=dg.AssetSelection.groups("tables"),
    description="Validate every landing table against the contract; quarantine bad rows.")
weekly_job = dg.define_asset_job(
    WEEKLY, selection=dg.AssetSelection.groups("conditioned", "features"),
    description="Condition region x week tables and build features. Launch a range of weeks of one region "
                "as one run.")
training_job = dg.define_asset_job(
    TRAINING, selection=dg.AssetSelection.assets("region_model"),
    description="Train and evaluate a region's model (one run per region).")
scoring_job = dg.define_asset_job(
    SCORING, selection=dg.AssetSelection.assets("scores"),
    description="Forecast a week for a region with its current model.")
