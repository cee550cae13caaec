"""Training-data lineage: immutable snapshots of what a model was trained on, and their digests.

A training frame is written once to ``<storage>/training_data/<region>/<digest>.parquet``;
the name is the digest of its content, so a later re-materialization of the feature
partitions writes a new snapshot beside it and never changes this one. The MLflow run
records the digest (as its dataset input) and a ``lineage.json`` naming the feature
partitions (with their Dagster data versions), the conditioned tables and the raw
landing files (with their hashes) that the frame came from.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's columns, dtypes and values (row order included, index ignored), its
    first 128 bits in hex: 32 characters, within MLflow's limit for a dataset digest."""
    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:32]


def snapshot_path(region: str, digest: str) -> str:
    return f"training_data/{region}/{digest}.parquet"


def write_snapshot(storage, region: str, frame: pd.DataFrame) -> tuple[str, str]:
    """Write ``frame`` once under its digest; returns (relative path, digest). The snapshot is
    read back and its digest checked, so what lineage points at is exactly what was trained on."""
    frame = frame.reset_index(drop=True)
    digest = frame_digest(frame)
    relative = snapshot_path(region, digest)
    if not storage.exists(relative):
        storage.write_parquet(relative, frame)
    else:  # reused: marked as just written, so housekeeping spares it until its model is registered
        storage.touch(relative)
    stored = frame_digest(storage.read_parquet(relative))
    if stored != digest:
        raise ValueError(f"training snapshot {relative} reads back with digest {stored}, not {digest}")
    return relative, digest


def read_snapshot(storage, relative: str, digest: str) -> pd.DataFrame:
    frame = storage.read_parquet(relative)
    found = frame_digest(frame)
    if found != digest:
        raise ValueError(f"training snapshot {relative}: digest {found} does not match the recorded {digest}")
    return frame
