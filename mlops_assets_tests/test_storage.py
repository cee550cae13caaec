"""The Parquet IO manager: one file per region x week, written and read as ranges, never pickled."""

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.partitions import region_week_partitions, split_key
from mlops_assets.resources import ParquetIOManager, StorageResource

PARTS = region_week_partitions("2026-01-05")
WEEKS = ["2026-01-05", "2026-01-12", "2026-01-19"]


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), io_manager_key="io")
def counts(context: dg.AssetExecutionContext) -> pd.DataFrame:
    keys = [split_key(k) for k in context.partition_keys]
    rows = [(r, w, i) for i, (r, w) in enumerate(keys) if w != "2026-01-12"]  # one week has no rows
    return pd.DataFrame(rows, columns=["region", "week_start", "value"]).astype({"week_start": "datetime64[ns]"})


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), io_manager_key="io")
def doubled(counts: pd.DataFrame) -> pd.DataFrame:
    return counts.assign(value=counts["value"] * 2)


def _materialize(tmp_path, selection, start, end):
    io = ParquetIOManager(storage=StorageResource(root=str(tmp_path)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("region", ["north"])
        return dg.materialize([counts, doubled], selection=selection, instance=instance, resources={"io": io},
                              tags={"dagster/asset_partition_range_start": start,
                                    "dagster/asset_partition_range_end": end})


def test_range_run_writes_each_partition_and_downstream_reads_them(tmp_path):
    result = _materialize(tmp_path, [counts, doubled], f"north|{WEEKS[0]}", f"north|{WEEKS[-1]}")
    assert result.success
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [f"{a}/north/{w}.parquet" for a in ("counts", "doubled") for w in WEEKS]
    assert len(pd.read_parquet(tmp_path / "counts/north/2026-01-12.parquet")) == 0  # written, empty
    doubled_back = pd.concat(pd.read_parquet(tmp_path / f"doubled/north/{w}.parquet") for w in WEEKS)
    assert doubled_back["value"].tolist() == [0, 4]
    assert not list(tmp_path.rglob("*.tmp"))
    assert not list(tmp_path.rglob("*.pkl")) and not [p for p in tmp_path.rglob("*") if p.suffix == ""
                                                       and p.is_file()]


def test_reading_a_partition_that_was_never_materialized_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"counts partition north\|2026-01-05 has not been materialized"):
        _materialize(tmp_path, [doubled], f"north|{WEEKS[0]}", f"north|{WEEKS[0]}")


def test_output_rows_outside_the_run_are_refused(tmp_path):
    io = ParquetIOManager(storage=StorageResource(root=str(tmp_path)))

    @dg.asset(partitions_def=PARTS, io_manager_key="io", name="leaky")
    def leaky() -> pd.DataFrame:
        return pd.DataFrame({"region": ["south"], "week_start": pd.to_datetime([WEEKS[0]]), "value": [1]})

    with dg.instance_for_test() as instance, pytest.raises(ValueError, match="rows for partitions outside this run"):
        instance.add_dynamic_partitions("region", ["north", "south"])
        dg.materialize([leaky], instance=instance, resources={"io": io}, partition_key=f"north|{WEEKS[0]}")


def test_training_snapshots_of_models_no_longer_kept_are_pruned_and_a_fresh_one_stays(tmp_path):
    import os

    storage = StorageResource(root=str(tmp_path))
    for name in ("kept", "gone", "fresh"):
        storage.write_parquet(f"training_data/north/{name}.parquet", pd.DataFrame({"x": [1]}))
    old = 1_000_000.0
    for name in ("kept", "gone"):
        os.utime(tmp_path / "training_data" / "north" / f"{name}.parquet", (old, old))
    # "fresh": a training in progress wrote it and has not registered the model that names it yet
    removed = storage.prune_snapshots({"kept"}, now=old + 7200)
    assert removed == ["training_data/north/gone.parquet"]
    assert sorted(p.stem for p in (tmp_path / "training_data" / "north").glob("*.parquet")) == ["fresh", "kept"]


def test_a_reused_training_snapshot_is_marked_fresh_so_pruning_spares_it(tmp_path):
    """Retraining on unchanged data reuses the snapshot file: it must count as just written, or the
    pruning could remove it before the new model that names it is registered."""
    import os

    from mlops_assets.registry.lineage import write_snapshot

    storage = StorageResource(root=str(tmp_path))
    frame = pd.DataFrame({"store_id": ["s1"], "target": [3.0]})
    relative, digest = write_snapshot(storage, "north", frame)
    os.utime(tmp_path / relative, (1_000_000.0, 1_000_000.0))
    assert write_snapshot(storage, "north", frame) == (relative, digest)
    assert storage.prune_snapshots(set()) == []  # younger than an hour again
