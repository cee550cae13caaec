"""Several regions at once: a region's runs in a worker process of its own, one core each.

A region's work is independent of the others' (its own partitions, its own MLflow model), so
two regions use two cores. The Dagster instance and the MLflow store are the same for all (MLflow
writes take the store's lock).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from mlops_assets.app.execution import RunSummary
from mlops_assets.locations import source


def lanes(requested: int | None, regions: int, shipment_rows: int, configured: int = 0) -> int:
    """How many regions run at once: ``requested`` (``--workers``), else ``configured``
    (``MLOPS_RUN_WORKERS``), else two on a machine with two cores when the regions are big enough
    (100,000 shipment rows each on average) to repay a worker process's start (about 6 s:
    Dagster, torch and MLflow imported)."""
    requested = requested or configured
    if requested:
        return max(1, min(requested, regions))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    big = regions and shipment_rows / regions >= 100_000
    return min(2, cores, regions) if big else 1


def size_estimate(landing: Path) -> tuple[int, int]:
    """(regions, shipment rows) guessed from stores.csv's regions and the shipment files' bytes
    (about 30 a row), without validating anything: enough to choose where validation runs."""
    from mlops_assets.contract import validation as contract

    try:
        with source(landing / "stores.csv") as f:
            regions = pd.read_csv(f, usecols=["region"], dtype=str)["region"].nunique()
    except (OSError, ValueError):
        return 1, 0
    files = contract.table_stamps(landing, contract.TABLES["shipments"])
    return max(1, regions), sum(size for _, size, _ in files) // 30


def in_processes(worker: Callable[[str, str, dict], str], task: str, keys: list[str], n: int, params: dict,
                 summary: RunSummary, fresh: bool = True) -> dict[str, dict]:
    """``worker(task, key, params)`` for each key (a region) in worker processes, ``n`` at a time.
    ``fresh``: a new process per key, so each worker's memory ends with its task (training); else
    the workers live on (small tasks: a start costs about 6 s). Each task's runs and stage timings
    go into ``summary``; returns each task's result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no forked copy of this process's memory or threads
    with ProcessPoolExecutor(max_workers=n, mp_context=context, max_tasks_per_child=1 if fresh else None) as pool:
        futures = {pool.submit(worker, task, key, params): key for key in keys}
        done = {}
        for future in as_completed(futures):
            done[futures[future]] = json.loads(future.result())  # a failed task raises here, with its error
    out = {}
    for key in keys:  # in the order asked, whatever order they finished in
        part = done[key]
        for name in ("models", "replay"):
            getattr(summary, name).update(part[name])
        summary.run_ids.extend(part["run_ids"])
        summary.timings.extend((label, seconds) for label, seconds in part["timings"])
        summary.stages.extend((label, seconds, peak) for label, seconds, peak in part["stages"])
        out[key] = part.get("result")
    return out


def worker_part(summary: RunSummary, result=None) -> str:
    """What a worker sends back: its part of the summary and its task's result, as JSON."""
    return json.dumps({"models": summary.models, "replay": summary.replay, "run_ids": summary.run_ids,
                       "timings": summary.timings, "stages": summary.stages, "result": result}, default=_plain)


def stage_timer(summary: RunSummary):
    """A stage hook for a worker's runs: each run's seconds and the worker's peak memory after it."""
    @contextmanager
    def stage(label):
        started = time.perf_counter()
        yield
        summary.stages.append((label, time.perf_counter() - started, peak_rss()))

    return stage


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes: VmHWM, which starts afresh with the
    process image (getrusage's ru_maxrss carries the spawning parent's peak over)."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
