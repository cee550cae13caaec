"""Asset storage: Parquet files under one root, written and read a partition at a time.

Dagster's default IO manager pickles and refuses an output that spans several
partitions; this one writes each partition of a region x week asset to its own
file (``<root>/<asset>/<region>/<week>.parquet``), so a run over a range of weeks
stores every week separately and any later run can read any subset back.
Partitioned frames carry ``region`` and ``week_start`` columns: that is how an
output is split into its partitions.
"""


import json
import os
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets.ml.ensemble import ForecastModel
from mlops_assets.partitions import split_key

ALLOW_MISSING = "allow_missing_partitions"
SKIPPED = "mlops_skipped_partitions"  # frame.attrs: partitions of the output that were not built


class StorageResource(dg.ConfigurableResource):
    """Where asset values and quarantined rows live: a folder (local by default)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)

    def write_parquet(self, relative: str, frame: pd.DataFrame) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)  # readers never see a half-written file
        return target

    def write_text(self, relative: str, text: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
        return target

    def read_parquet(self, relative: str, filters: list | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """A stored table, or only its rows matching ``filters`` (pyarrow's [(column, op, value)],
        applied while reading: the rest never becomes a pandas object)."""
        return pd.read_parquet(self.path / relative, filters=filters, columns=columns)

    def exists(self, relative: str) -> bool:
        return (self.path / relative).exists()

    def write_quarantine(self, table: str, run_id: str, frame: pd.DataFrame) -> Path:
        """Rejected rows, as their original text with file, row and reasons, kept per run."""
        return self.write_parquet(f"quarantine/{table}/{run_id}.parquet", frame)


def _asset_dir(key: dg.AssetKey) -> str:
    return "/".join(key.path)


def partition_file(key: dg.AssetKey, partition_key) -> str:
    region, week = split_key(partition_key)
    return f"{_asset_dir(key)}/{region}/{week}.parquet"


class ParquetIOManager(dg.ConfigurableIOManager):
    storage: StorageResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: ParquetIOManager stores DataFrames, "
                            f"got {type(obj).__name__}")
        if not context.has_asset_partitions:
            path = self.storage.write_parquet(f"{_asset_dir(context.asset_key)}.parquet", obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "rows": len(obj)})
            return
        missing = {"region", "week_start"} - set(obj.columns)
        if missing:
            raise ValueError(f"{context.asset_key.to_user_string()}: a region x week output needs "
                             f"columns {sorted(missing)} to be split into partitions")
        weeks = pd.to_datetime(obj["week_start"]).dt.strftime("%Y-%m-%d")
        groups = {k: idx for k, idx in obj.groupby([obj["region"], weeks]).groups.items()}
        # partitions the asset did not build (data not landed): no file, an earlier one stays
        skipped = set(obj.attrs.get(SKIPPED, ()))
        keys = [k for k in context.asset_partition_keys if str(k) not in skipped]
        for partition_key in keys:
            region, week = split_key(partition_key)
            idx = groups.pop((region, week), None)
            part = obj.loc[idx] if idx is not None else obj.iloc[0:0]
            self.storage.write_parquet(partition_file(context.asset_key, partition_key),
                                       part.reset_index(drop=True))
        if groups:
            raise ValueError(f"{context.asset_key.to_user_string()}: output has rows for partitions "
                             f"outside this run: {sorted(groups)[:5]}")
        # no output metadata here: it would be every partition's; rows and paths are each partition's own

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        key = context.asset_key
        if not context.has_asset_partitions:
            relative = f"{_asset_dir(key)}.parquet"
            if not self.storage.exists(relative):
                raise FileNotFoundError(f"{key.to_user_string()} has not been materialized yet "
                                        f"(no {self.storage.path / relative})")
            return self.storage.read_parquet(relative)
        # An input may declare that absent partitions are expected (history before the first
        # week, a week not observed yet); otherwise a missing partition is an error.
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING))
        frames = []
        for partition_key in sorted(context.asset_partition_keys):  # one order, whatever the mapping's
            relative = partition_file(key, partition_key)
            if not self.storage.exists(relative):
                if allow_missing:
                    continue
                raise FileNotFoundError(f"{key.to_user_string()} partition {partition_key} has not been "
                                        f"materialized yet; materialize it first (e.g. mlops-assets run)")
            frames.append(self.storage.read_parquet(relative))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class ModelIOManager(dg.ConfigurableIOManager):
    """Region models as folders of JSON and NPZ files (never pickled).

    Every materialization writes a new, immutable folder ``region_model/<region>/<run_id>/``
    and then moves the pointer ``region_model/<region>/current.json`` to it, so earlier
    versions stay readable and a half-written model is never the current one.
    """

    storage: StorageResource

    def _region(self, context) -> str:
        return context.partition_key if context.has_partition_key else "all"

    def handle_output(self, context: dg.OutputContext, obj: ForecastModel) -> None:
        region = self._region(context)
        base = self.storage.path / _asset_dir(context.asset_key) / region
        folder = base / context.run_id
        obj.save(folder)
        pointer = {"version": context.run_id, "as_of_week": obj.as_of_week}
        tmp = base / f".current.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(pointer) + "\n")
        os.replace(tmp, base / "current.json")
        obj.version = context.run_id
        context.add_output_metadata({"path": dg.MetadataValue.path(str(folder)), "model_version": context.run_id})

    def load_input(self, context: dg.InputContext) -> ForecastModel:
        region = context.asset_partition_key if context.has_asset_partitions else "all"
        base = self.storage.path / _asset_dir(context.asset_key) / region
        if not (base / "current.json").exists():
            raise FileNotFoundError(f"no {context.asset_key.to_user_string()} for region {region} yet; "
                                    "train one first (mlops-assets run)")
        return load_model(base)


def load_model(region_folder: Path) -> ForecastModel:
    pointer = json.loads((Path(region_folder) / "current.json").read_text())
    model = ForecastModel.load(Path(region_folder) / pointer["version"])
    model.version = pointer["version"]
    return model
