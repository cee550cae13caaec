"""What a person asks of the releases outside the UI: status, lineage, promote, rollback.

Used by ``mlops-assets status | lineage | promote | rollback``; reads the MLflow
registry and the asset storage named by the same settings as the Dagster graph.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json

import pandas as pd

from mlops_assets.config import Settings, redacted
from mlops_assets.locations import url
from mlops_assets.registry.lineage import read_snapshot
from mlops_assets.registry.tracking import Registry, RegistryError, registered_name
from mlops_assets.resources.mlflow_registry import MlflowRegistryResource
from mlops_assets.resources.storage import StorageResource


def registry_for(settings: Settings) -> Registry:
    return MlflowRegistryResource.from_settings(settings).registry


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _storage(settings: Settings) -> StorageResource:
    return StorageResource(root=url(settings.storage_root))


def status(settings: Settings) -> list[dict]:
    """Per region: the champion, its age against the next week to score, the last gate verdict."""
    registry = registry_for(settings)
    rows = []
    for region in registry.regions():
        versions = registry.versions(region)
        champion, retired = registry.champion(region), registry.retired(region)
        latest = versions[-1] if versions else None
        weeks = _storage(settings).files(f"features/{region}")
        reference = weeks[-1] if weeks else dt.date.today().isoformat()
        row = {"region": region, "champion": champion.version if champion else None,
               "as_of_week": champion.as_of_week if champion else None, "age_days": None, "stale": None,
               "reference_week": reference, "latest_version": latest.version if latest else None,
               "latest_verdict": latest.verdict if latest else None,
               "promoted_at": champion.tags.get("promoted_at") if champion else None,
               "retired": f"{retired['at'][:10]}: {retired['reason']}" if retired else None}
        if champion and champion.as_of_week:
            age = (pd.Timestamp(reference) - pd.Timestamp(champion.as_of_week)).days
            row["age_days"], row["stale"] = age, age > settings.stale_after_days
        rows.append(row)
    return rows


def open_alerts(settings: Settings) -> list[dict]:
    """The alerts of the last ``alerts`` materialization (each region's latest monitored weeks)."""
    storage = _storage(settings)
    if not storage.exists("alerts.parquet"):
        return []
    table = storage.read_parquet("alerts.parquet")
    return json.loads(table.drop(columns=["run_id"], errors="ignore").to_json(orient="records"))


def format_status(rows: list[dict], settings: Settings, alerts: list[dict] | None = None) -> str:
    if not rows:
        return f"no registered models in {redacted(settings.mlflow_tracking_uri)}; train with mlops-assets run"
    table = pd.DataFrame(rows).fillna("-")
    text = (table.to_string(index=False) + f"\n\nage: days from the champion's last training week to the next week "
            f"to score; stale after {settings.stale_after_days} days. Store: {redacted(settings.mlflow_tracking_uri)}")
    alerts = alerts or []
    text += f"\n\n{len(alerts)} open alerts" + (":" if alerts else " (from the alerts asset)")
    if alerts:
        shown = pd.DataFrame(alerts)[["region", "week", "kind", "severity", "value", "threshold", "message", "link"]]
        text += "\n" + shown.fillna("-").to_string(index=False, max_colwidth=70)
    return text


def trace(settings: Settings, region: str, week: str) -> dict:
    """forecast -> model version -> run -> hyperparameters -> training snapshot -> tables -> raw files."""
    storage = _storage(settings)
    relative = f"scores/{region}/{week}.parquet"
    if not storage.exists(relative):
        raise RegistryError(f"no scores for {region} week {week} in {url(settings.storage_root)} "
                            f"(weeks scored: {', '.join(storage.files(f'scores/{region}')) or 'none'})")
    scores = storage.read_parquet(relative)
    [model_version] = scores["model_version"].unique()
    name, version = model_version.rsplit("/", 1)
    if name != registered_name(region):
        raise RegistryError(f"{relative} was scored by {model_version}, not a {registered_name(region)} version")
    registry = registry_for(settings)
    release = registry.release(region, version)
    run = registry.run(release.run_id)
    lineage = registry.download(release.run_id, "lineage.json")
    datasets = [{"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source,
                 "context": next((t.value for t in d.tags if t.key == "mlflow.data.context"), None),
                 "rows": json.loads(d.dataset.profile or "{}").get("num_rows"),
                 "columns": [c["name"] for c in json.loads(d.dataset.schema or "{}").get("mlflow_colspec", [])]}
                for d in run.inputs.dataset_inputs]
    training = lineage["training_data"]
    frame = read_snapshot(storage, training["path"], training["digest"])  # raises if it changed
    return {
        "forecast": {"region": region, "week": week, "rows": len(scores), "total": float(scores["forecast"].sum()),
                     "model_version": model_version, "model_age_days": int(scores["model_age_days"].max())},
        "model": {"name": name, "version": version, "verdict": release.verdict, "as_of_week": release.as_of_week,
                  "promoted_at": release.tags.get("promoted_at"),
                  "promotion_reason": release.tags.get("promotion_reason")},
        "run": {"run_id": release.run_id, "experiment_id": run.info.experiment_id,
                "dagster_run_id": run.data.tags.get("dagster_run_id"), "git_commit": run.data.tags.get("git_commit"),
                "code_version": run.data.tags.get("code_version"),
                "region_ensemble_mape": run.data.metrics.get("region.ensemble.mape")},
        "hyperparameters": dict(sorted(run.data.params.items())),
        "training_data": {**training, "datasets": datasets, "rebuilt_rows": len(frame),
                          "rebuilt_digest_matches": True},
        "feature_partitions": lineage["feature_partitions"],
        "tables": lineage["tables"],
        "raw_files": lineage["raw_files"],
    }


def rebuild_training_frame(settings: Settings, chain: dict) -> pd.DataFrame:
    storage = _storage(settings)
    return read_snapshot(storage, chain["training_data"]["path"], chain["training_data"]["digest"])


def format_trace(chain: dict) -> str:
    f, m, r, t = chain["forecast"], chain["model"], chain["run"], chain["training_data"]
    parts = chain["feature_partitions"]
    mape = f"{r['region_ensemble_mape']:.3f}" if r["region_ensemble_mape"] is not None else "-"
    lines = [
        f"forecast   {f['region']} week {f['week']}: {f['rows']} store x product rows, total {f['total']:.0f} units, "
        f"model age {f['model_age_days']} days",
        f"  model    {m['name']} version {m['version']} (gates {m['verdict']}; trained up to {m['as_of_week']}; "
        f"promoted {m['promoted_at'] or '-'}: {m['promotion_reason'] or '-'})",
        f"  run      MLflow run {r['run_id']} (experiment {r['experiment_id']}), Dagster run {r['dagster_run_id']}, "
        f"git {r['git_commit']}, code version {r['code_version']}, region ensemble MAPE {mape}",
        "  hyperparameters " + ", ".join(f"{k}={v}" for k, v in chain["hyperparameters"].items()
                                         if k.startswith("config.") or k.endswith(("lasso_alpha", "nn_epochs",
                                                                                   "ensemble_weight_lasso"))),
        f"  training data  {t['path']} digest {t['digest']}: {t['rows']} rows, weeks {t['first_week']} .. "
        f"{t['last_week']}; rebuilt {t['rebuilt_rows']} rows, digest matches",
    ]
    for d in t["datasets"]:
        lines.append(f"    MLflow dataset {d['name']} ({d['context']}) digest {d['digest']} from {d['source']}")
    runs = {p["run_id"] for p in parts.values()}
    lines.append(f"  feature partitions  {len(parts)} ({next(iter(parts), '-')} .. {next(reversed(parts), '-')}), "
                 f"written by {len(runs)} Dagster run(s); file sha256 and data version of each in --json")
    for table, info in chain["tables"].items():
        raw = chain["raw_files"][table]
        lines.append(f"  table {table}: Dagster run {info['run_id']}, built from raw data version "
                     f"{info['raw_data_version']} ({'same as' if raw['same_as_table_input'] else 'differs from'} "
                     f"the files at training time)")
        for path, digest in raw["files"].items():
            lines.append(f"    raw {path} sha256 {digest}")
    return "\n".join(lines)


def trace_json(chain: dict) -> str:
    return json.dumps(chain, indent=2, default=str)
