"""Benchmark: the same `mlops-assets run` with its data on local disk and on Azure Blob Storage.

    .venv/bin/python bench/azure_storage.py [--landing data/sample] [--regions north,south]

Starts Azurite (the Azure Storage emulator, installed by `make test`) on 127.0.0.1, uploads the
landing folder to a container, and runs the whole graph twice in fresh homes: once with the
landing folder and storage as local paths, once as az:// URLs (MLflow's artifacts on the emulator
too). Prints each run's seconds and peak RSS, and the blobs and bytes the Azure run stored. The
emulator is local, so the difference is the cost of the Blob protocol (HTTP, listing, uploads
whole), not of a network.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_assets_tests.servers import azurite_server  # noqa: E402 - after the path


def run(env: dict, regions: str, cwd: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one `mlops-assets run` (the process itself; its workers, if
    it starts any, are not counted)."""
    cmd = [str(Path(sys.executable).parent / "mlops-assets"), "run"] + (["--regions", regions] if regions else [])
    start = time.perf_counter()
    with open(cwd / "run.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mlops-assets run failed:\n{(cwd / 'run.log').read_text()[-4000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--landing", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--regions", default="", help="comma-separated (default: all)")
    args = parser.parse_args()
    landing = Path(args.landing).resolve()
    files = [p for p in landing.rglob("*") if p.is_file()]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_", "AZURE_"))}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-azure-") as tmp:
        work = Path(tmp)
        local_env = {**base, "MLOPS_HOME": str(work / "local"), "MLOPS_LANDING_DIR": str(landing)}
        local_s, local_peak = run(local_env, args.regions, work)
        print(f"local disk : {local_s:7.1f} s, peak RSS {local_peak:,.0f} MiB "
              f"({len(files)} landing files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB)", flush=True)

        with azurite_server(work / "azurite", containers=("landing", "data", "mlflow")) as connection:
            from azure.storage.blob import BlobServiceClient

            service = BlobServiceClient.from_connection_string(connection)
            start = time.perf_counter()
            for file in files:
                with open(file, "rb") as data:
                    service.get_container_client("landing").upload_blob(
                        f"weekly/{file.relative_to(landing).as_posix()}", data, overwrite=True)
            upload = time.perf_counter() - start
            azure_env = {**base, "MLOPS_HOME": str(work / "azure"), "MLOPS_LANDING_DIR": "az://landing/weekly",
                         "MLOPS_STORAGE_ROOT": "az://data/mlops", "AZURE_STORAGE_CONNECTION_STRING": connection,
                         "MLOPS_MLFLOW_ARTIFACTS": "wasbs://mlflow@devstoreaccount1.blob.core.windows.net/artifacts"}
            azure_s, azure_peak = run(azure_env, args.regions, work)
            stored = {c: [(b.name, b.size) for b in service.get_container_client(c).list_blobs()]
                      for c in ("data", "mlflow")}
        print(f"Azure Blob : {azure_s:7.1f} s, peak RSS {azure_peak:,.0f} MiB (landing upload {upload:.1f} s); "
              f"{azure_s / local_s:.2f}x the local run")
        for container, blobs in stored.items():
            print(f"  container {container}: {len(blobs):,} blobs, {sum(s for _, s in blobs) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
