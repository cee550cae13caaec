"""Asset storage: Parquet files under one root, written and read a partition at a time.

Dagster's default IO manager pickles and refuses an output that spans several
partitions; this one writes each partition of a region x week asset to its own
file (``<root>/<asset>/<region>/<week>.parquet``), so a run over a range of weeks
stores every week separately and any later run can read any subset back.
Partitioned frames carry ``region`` and ``week_start`` columns: that is how an
output is split into its partitions.
"""


import json
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

from mlops_assets.errors import ContractError
from mlops_assets.locations import (
    files_in,
    is_local,
    local_copy,
    location,
    remove_tree,
    source,
    upload_folder,
    url,
    write_atomically,
)
from mlops_assets.ml.ensemble import ForecastModel
from mlops_assets.partitions import split_key


def parquet_schema(frame: pd.DataFrame) -> pa.Schema | None:
    """The Arrow schema to store ``frame`` with where a text column holds no value (an empty
    table, a column nobody filled): as text, where Parquet would store the null type, on which a
    reader's filter (``store_id in [...]``) fails. None where Arrow's own inference serves."""
    # first_valid_index stops at the first value: a column with one is never scanned to the end
    empty_text = [c for c in frame.columns if frame[c].dtype == object and frame[c].first_valid_index() is None]
    if not empty_text:
        return None
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for name in empty_text:
        schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
    return schema


ALLOW_MISSING = "allow_missing_partitions"
LANDING_MARKER = "landing.json"  # the landing folder this storage's tables were published from
SKIPPED = "mlops_skipped_partitions"  # frame.attrs: partitions of the output that were not built


class StorageResource(dg.ConfigurableResource):
    """Where asset values and quarantined rows live: a folder (local by default)."""

    root: str
    retention_days: int = 90  # holdout forecasts and quarantined rows older than this are removed
    keep_models: int = 10  # model folders kept per region (and always the current one)

    @property
    def path(self) -> Path:
        """The root: a local folder, or a folder on Azure (see ``mlops_assets.locations``)."""
        return location(self.root, "MLOPS_STORAGE_ROOT")

    def write_parquet(self, relative: str, frame: pd.DataFrame) -> Path:
        target = self.path / relative
        schema = parquet_schema(frame)
        write_atomically(target, lambda f: frame.to_parquet(f, index=False, schema=schema))  # never half-written
        return target

    def write_text(self, relative: str, text: str) -> Path:
        target = self.path / relative
        data = text.encode()
        write_atomically(target, lambda where: where.write_bytes(data) if is_local(where) else where.write(data))
        return target

    def read_parquet(self, relative: str, filters: list | None = None,
                     columns: list[str] | None = None) -> pd.DataFrame:
        """A stored table, or only its rows matching ``filters`` (pyarrow's [(column, op, value)],
        applied while reading: the rest never becomes a pandas object)."""
        with source(self.path / relative) as f:
            return pd.read_parquet(f, filters=filters, columns=columns)

    def exists(self, relative: str) -> bool:
        return (self.path / relative).exists()

    def touch(self, relative: str) -> None:
        """Mark a stored file as written now. On Azure a blob's time changes only with its bytes,
        so there it is written again (a snapshot: a few MB at seed scale, once per training)."""
        path = self.path / relative
        if is_local(path):
            path.touch()
        else:
            data = path.read_bytes()
            write_atomically(path, lambda where: where.write(data))

    def files(self, folder: str, suffix: str = ".parquet") -> list[str]:
        """The names (``stem``s) of the files directly in ``folder`` ending in ``suffix``, sorted;
        none when the folder does not exist. Hidden files (a write in progress) are left out."""
        return [p.name[:-len(suffix)] for p, _, _ in files_in(self.path / folder) if p.name.endswith(suffix)]

    def claim_landing(self, landing: Path, record: bool = True) -> None:
        """Bind this storage to one landing folder. Its partitions are read by region and week,
        whatever run wrote them: tables from another folder published here would mix two
        datasets in one training frame. The first publication records the folder; another one
        is refused, and the stored state stays as it was."""
        marker = self.path / LANDING_MARKER
        here = url(location(landing))
        if marker.exists():
            recorded = json.loads(marker.read_text())["landing"]
            if recorded != here:
                raise ContractError(
                    f"{self.path} holds tables and partitions built from the landing folder {recorded}, and "
                    f"MLOPS_LANDING_DIR is now {here}: their weeks would be mixed in training. Give the new "
                    f"folder a home of its own (MLOPS_HOME or MLOPS_STORAGE_ROOT), or point back at {recorded}. "
                    f"Only if {here} is the same data moved: edit {marker}.")
            return
        if record:
            self.write_text(LANDING_MARKER, json.dumps({"landing": here}) + "\n")

    def housekeeping(self, now: float | None = None, tmp_age_seconds: int = 3600,
                     keep_runs: set[str] = frozenset()) -> dict[str, list[str]]:
        """Remove what no reader needs: files an interrupted write left (``.*.tmp``, older than
        ``tmp_age_seconds``, so a write in progress is never touched); holdout forecasts and
        quarantined rows older than ``retention_days``; and of each region's model folders, all
        but the newest ``keep_models`` and the one ``current.json`` points to. The champion is
        served from the MLflow registry, so an old folder is never what serves. ``keep_runs``:
        Dagster run ids whose holdout forecasts stay however old (the serving champions': the
        dashboard reads them). Returns the removed paths per kind, relative to the root."""
        import time

        now = now if now is not None else time.time()
        removed: dict[str, list[str]] = {"interrupted writes": [], "holdout forecasts": [], "quarantine": [],
                                         "model folders": []}

        def old(path: Path, seconds: float) -> bool:
            return now - path.stat().st_mtime > seconds

        def written(folder: Path) -> float:
            """When a model folder was last written to: a folder being uploaded is the newest.
            (A blob "folder" is a name prefix, with no time of its own: its newest file's.)"""
            if is_local(folder):
                return folder.stat().st_mtime
            return max((f.stat().st_mtime for f in folder.rglob("*") if f.is_file()), default=now)

        # interrupted writes exist only locally: a blob upload is committed whole or not at all
        for tmp in self.path.rglob(".*.tmp") if is_local(self.path) else ():
            if tmp.is_file() and old(tmp, tmp_age_seconds):
                tmp.unlink()
                removed["interrupted writes"].append(str(tmp.relative_to(self.path)))
        for kind, folder in (("holdout forecasts", "holdout_forecasts"), ("quarantine", "quarantine")):
            for file in sorted((self.path / folder).rglob("*.parquet")):
                if old(file, self.retention_days * 86400) and file.stem not in keep_runs:
                    file.unlink()
                    removed[kind].append(str(file.relative_to(self.path)))
        for region in sorted(p for p in (self.path / "region_model").glob("*") if p.is_dir()):
            pointer = region / "current.json"
            current = json.loads(pointer.read_text())["version"] if pointer.exists() else None
            folders = sorted((p for p in region.iterdir() if p.is_dir()), key=written, reverse=True)
            for folder in folders[self.keep_models:]:
                if folder.name != current:
                    remove_tree(folder)
                    removed["model folders"].append(str(folder.relative_to(self.path)))
        return {kind: sorted(paths) for kind, paths in removed.items()}

    def prune_snapshots(self, keep: set[str], now: float | None = None, min_age_seconds: int = 3600) -> list[str]:
        """Remove the training snapshots (``training_data/<region>/<digest>.parquet``) whose digest is
        not in ``keep`` (those of the kept models), older than ``min_age_seconds``: a training in
        progress writes its snapshot before it registers the model that names it. Returns the removed
        paths, relative to the root."""
        import time

        now = now if now is not None else time.time()
        removed = []
        for file in sorted((self.path / "training_data").rglob("*.parquet")):
            if file.stem not in keep and now - file.stat().st_mtime > min_age_seconds:
                file.unlink()
                removed.append(str(file.relative_to(self.path)))
        return removed

    def save_model(self, relative: str, model: ForecastModel) -> Path:
        """A model's folder of JSON and NPZ files at ``relative``, its manifest (``model.json``)
        last: a folder without one was interrupted and is never loaded."""
        folder = self.path / relative
        if is_local(folder):
            model.save(folder)
        else:  # files are written locally, then uploaded: the model's code knows only local paths
            with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
                model.save(Path(tmp))
                upload_folder(Path(tmp), folder)
        return folder

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
            context.add_output_metadata({"path": dg.MetadataValue.path(url(path)), "rows": len(obj)})
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
        """The candidate's folder is always written (the record of what was trained and why it
        failed); ``current.json`` moves to it only if it passed its gates (``obj.gates_passed``),
        so a rejected model never becomes what downstream reads as the region's model."""
        region = self._region(context)
        relative = f"{_asset_dir(context.asset_key)}/{region}"
        folder = self.storage.path / relative / context.run_id
        if not (folder / "model.json").exists():  # region_model saves it before promoting
            self.storage.save_model(f"{relative}/{context.run_id}", obj)
        passed = getattr(obj, "gates_passed", True)
        if passed:  # the pointer moves last, in one write: never to a half-written folder
            pointer = {"version": context.run_id, "as_of_week": obj.as_of_week}
            self.storage.write_text(f"{relative}/current.json", json.dumps(pointer) + "\n")
        obj.version = context.run_id
        context.add_output_metadata({"path": dg.MetadataValue.path(url(folder)), "model_version": context.run_id,
                                     "current model": context.run_id if passed else
                                     "unchanged: this candidate failed its gates"})

    def load_input(self, context: dg.InputContext) -> ForecastModel:
        region = context.asset_partition_key if context.has_asset_partitions else "all"
        base = self.storage.path / _asset_dir(context.asset_key) / region
        if not (base / "current.json").exists():
            raise FileNotFoundError(f"no {context.asset_key.to_user_string()} for region {region} yet; "
                                    "train one first (mlops-assets run)")
        return load_model(base)


def load_model(region_folder: Path) -> ForecastModel:
    """The model ``current.json`` points to, in a region's folder (local or on Azure)."""
    pointer = json.loads((region_folder / "current.json").read_text())
    return load_model_version(region_folder / pointer["version"])


def load_model_version(folder: Path) -> ForecastModel:
    with local_copy(folder) as local:  # read whole: nothing is left pointing at the copy
        model = ForecastModel.load(local)
    model.version = folder.name
    return model
