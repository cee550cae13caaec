"""Asset storage: Parquet files under one root, written and read a partition at a time.

Dagster's default IO manager pickles and refuses an output that spans several
partitions; this one writes each partition of a region x week asset to its own
file (``<root>/<asset>/<region>/<week>.parquet``), so a run over a range of weeks
stores every week separately and any later run can read any subset back.
Partitioned frames carry ``region`` and ``week_start`` columns: that is how an
output is split into its partitions.
"""


import os
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets.partitions import split_key


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

    def read_parquet(self, relative: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / relative)

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
        keys = context.asset_partition_keys
        for partition_key in keys:
            region, week = split_key(partition_key)
            idx = groups.pop((region, week), None)
            part = obj.loc[idx] if idx is not None else obj.iloc[0:0]
            self.storage.write_parquet(partition_file(context.asset_key, partition_key),
                                       part.reset_index(drop=True))
        if groups:
            raise ValueError(f"{context.asset_key.to_user_string()}: output has rows for partitions "
                             f"outside this run: {sorted(groups)[:5]}")
        context.add_output_metadata({"partitions_written": len(keys), "rows": len(obj),
                                     "root": dg.MetadataValue.path(str(self.storage.path / _asset_dir(context.asset_key)))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        key = context.asset_key
        if not context.has_asset_partitions:
            relative = f"{_asset_dir(key)}.parquet"
            if not self.storage.exists(relative):
                raise FileNotFoundError(f"{key.to_user_string()} has not been materialized yet "
                                        f"(no {self.storage.path / relative})")
            return self.storage.read_parquet(relative)
        frames = []
        for partition_key in context.asset_partition_keys:
            relative = partition_file(key, partition_key)
            if not self.storage.exists(relative):
                raise FileNotFoundError(f"{key.to_user_string()} partition {partition_key} has not been "
                                        f"materialized yet; materialize it first (e.g. mlops-assets run)")
            frames.append(self.storage.read_parquet(relative))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
