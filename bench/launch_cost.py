"""Benchmark: the cost of distribution. The same runs of one region executed in-process (as
`mlops-assets run` does) and launched as production launches them (queued, taken by the real
dagster-daemon, started in a process of their own by the code server: what a Kubernetes pod per
run adds on top is the pod's scheduling and image start).

    .venv/bin/python bench/launch_cost.py [--landing DIR] [--region NAME] [--keep DIR]

Default: the bundled sample's first region. Seed scale: a landing from
`mlops-assets sample DIR --regions 1 --stores-per-region 200 --products 30 --weeks 156`.

The region's history is first conditioned and its first model trained (not timed). Then, per
job (a week's conditioning, the region's training, the coming week's scoring): in-process, the
run's seconds and this process's peak resident memory during it; launched, the seconds from
enqueued to the run's start (queue, dequeue interval, process start, loading the code), the
run's own seconds, and the peak resident memory of its process (VmHWM, read from /proc until it
exits). The local instance's queue is dagster.yaml's (dequeued every second, one run at a time).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from run_stages import RssSampler  # noqa: E402


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return 0


def _launched(instance, job: str, tags: dict, env: dict, work: Path) -> dict:
    import dagster as dg

    before = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(job_name=job))}
    out = subprocess.run([str(Path(sys.executable).with_name("dagster")), "job", "launch", "-w",
                          str(ROOT / "workspace.yaml"), "-j", job, "--tags", json.dumps(tags)],
                         env=env, cwd=work, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    [run] = [r for r in instance.get_runs(filters=dg.RunsFilter(job_name=job)) if r.run_id not in before]
    peak, pid = 0, None
    while not (run := instance.get_run_by_id(run.run_id)).is_finished:
        if pid is None:
            starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            pid = starts[0].dagster_event.pid if starts else None
        if pid:
            peak = max(peak, _hwm(pid))
        time.sleep(0.05)
    if run.status != dg.DagsterRunStatus.SUCCESS and job != "training":  # a training may fail its gates
        raise SystemExit(f"{job} {run.run_id}: {run.status}")
    times = {e.dagster_event.event_type: e.timestamp for e in instance.all_logs(run.run_id) if e.dagster_event}
    enqueued = times[dg.DagsterEventType.RUN_ENQUEUED]
    started = times[dg.DagsterEventType.RUN_START]
    ended = times.get(dg.DagsterEventType.RUN_SUCCESS) or times[dg.DagsterEventType.RUN_FAILURE]
    return {"to_start": started - enqueued, "run": ended - started, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--region")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="mlops-launch-"))
    home = work / "home"
    os.environ.update(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), MLOPS_LANDING_DIR=args.landing)
    for name in ("MLOPS_STORAGE_ROOT", "MLOPS_FIRST_WEEK", "MLOPS_FIRST_SCORED_WEEK", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    import pandas as pd

    from mlops_assets.app.pipeline import run_pipeline
    from mlops_assets.config import Settings
    from mlops_assets.definitions import build_definitions
    from mlops_assets.partitions import week_to_score

    region = args.region or pd.read_csv(Path(args.landing) / "stores.csv", dtype=str)["region"].iloc[0]
    started = time.perf_counter()
    summary = run_pipeline(Path(args.landing), regions=[region], workers=1)
    print(f"prepared {region} ({summary.first_week} .. {summary.last_week}) in {time.perf_counter() - started:.0f} s")
    last = summary.last_week
    score_week = week_to_score(last)
    jobs = [("weekly", {"dagster/partition": f"{region}|{last}"}),
            ("training", {"dagster/partition": region}),
            ("scoring", {"dagster/partition": f"{region}|{score_week}"})]

    settings = Settings.from_env()
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    rows = {}
    with RssSampler() as sampler:
        for job, tags in jobs:
            sampler.reset()
            t = time.perf_counter()
            defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                                         partition_key=tags["dagster/partition"])
            rows[job] = {"in_process": time.perf_counter() - t, "in_process_peak": sampler.peak}

    env = {**os.environ}
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                               str(ROOT / "workspace.yaml")], env=env, cwd=work, stdout=(work / "daemon.log").open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for job, tags in jobs:
            rows[job].update(_launched(instance, job, tags, env, work))
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    mb = 1024 * 1024
    print(f"\n{'job':9} {'in-process s':>12} {'peak MB':>8} | {'enqueued->start s':>17} {'run s':>7} "
          f"{'run process peak MB':>19} {'launch overhead s':>17}")
    for job, r in rows.items():
        print(f"{job:9} {r['in_process']:12.1f} {r['in_process_peak'] / mb:8.0f} | {r['to_start']:17.1f} "
              f"{r['run']:7.1f} {r['peak'] / mb:19.0f} {r['to_start'] + r['run'] - r['in_process']:17.1f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
