"""The pipeline on Azure Blob Storage, against Azurite started by the test on 127.0.0.1: the
landing folder, asset storage, quarantine, training snapshots, models and MLflow's artifacts are
all blobs; this machine's disk keeps only Dagster's own instance. ADLS Gen2 (which Azurite does
not emulate) is covered by configuration tests without a network."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets_tests.conftest import TOY_COVERAGE_TOL, edit_csv
from mlops_assets_tests.servers import AZURITE_KEY, azurite_server

BIN = Path(sys.executable).parent
LOAD = """
from mlops_assets.config import Settings
from mlops_assets.locations import source
from mlops_assets.releases import registry_for
import pandas as pd
settings = Settings.from_env()
registry = registry_for(settings)
release = registry.release("north", "1")
model = registry.load_forecast_model(release)  # downloaded from the mlflow container
with source(settings.storage_root / "features" / "north" / "2026-11-16.parquet") as f:  # the data container
    rows = pd.read_parquet(f)
print("forecasts", len(model.predict(rows)))
"""
DATA_SUFFIXES = (".parquet", ".csv", ".npz", ".json", ".html")


@pytest.fixture(autouse=True)
def fresh_azure_clients():
    """fsspec keeps one file system per set of arguments, and the credentials are not among them
    (adlfs reads them from the environment): a client made for one test's Azurite would serve the
    next test's, on a port that is gone. A process of the pipeline has one environment."""
    from adlfs import AzureBlobFileSystem

    AzureBlobFileSystem.clear_instance_cache()
    yield
    AzureBlobFileSystem.clear_instance_cache()


def _upload(connection: str, folder: Path, container: str, prefix: str) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(connection).get_container_client(container)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(file, "rb") as data:
            client.upload_blob(f"{prefix}/{file.relative_to(folder).as_posix()}", data, overwrite=True)


def _blobs(connection: str, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    return sorted(b.name for b in BlobServiceClient.from_connection_string(connection)
                  .get_container_client(container).list_blobs())


@pytest.mark.azure
def test_the_whole_pipeline_runs_with_every_byte_on_azure_blob_storage(trainable_landing_template, tmp_path,
                                                                     monkeypatch):
    staged, home = tmp_path / "staged", tmp_path / "home"
    shutil.copytree(trainable_landing_template, staged)
    ship = sorted((staged / "shipments").glob("*.csv"))[0]
    row = ship.read_text().splitlines()[1].split(",")
    edit_csv(ship, 2, ",".join([*row[:3], "-1"]))  # one bad row: quarantined, on Azure too
    with azurite_server(tmp_path / "azurite", containers=("landing", "data", "mlflow")) as connection:
        _upload(connection, staged, "landing", "weekly")
        shutil.rmtree(staged)  # from here on the only copy of the data is on the emulator
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_", "AZURE_"))}
        env.update(MLOPS_HOME=str(home), MLOPS_LANDING_DIR="az://landing/weekly",
                   MLOPS_STORAGE_ROOT="az://data/mlops",
                   MLOPS_MLFLOW_ARTIFACTS="wasbs://mlflow@devstoreaccount1.blob.core.windows.net/artifacts",
                   # credentials only from the environment: adlfs and MLflow both read this
                   AZURE_STORAGE_CONNECTION_STRING=connection, MLOPS_COVERAGE_TOL=TOY_COVERAGE_TOL)
        run = subprocess.run([str(BIN / "mlops-assets"), "run", "--regions", "north"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        load = subprocess.run([sys.executable, "-c", LOAD], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert load.returncode == 0 and "forecasts" in load.stdout, load.stderr[-3000:]
        status = subprocess.run([str(BIN / "mlops-assets"), "status"], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)
        assert status.returncode == 0 and "north" in status.stdout, status.stdout + status.stderr[-2000:]
        data, mlflow = _blobs(connection, "data"), _blobs(connection, "mlflow")

        # the landing sensor sees a file change on the container (a listing, then a hash of what moved)
        from mlops_assets.automation.sensors import detect_changes
        from mlops_assets.locations import location

        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
        landing = location("az://landing/weekly")
        state, changed, _ = detect_changes(landing, {})
        assert f"shipments/{ship.name}" in changed and len(changed) == len(state)
        shipments = sorted(k for k in state if k.startswith("shipments/"))
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(connection).get_blob_client("landing", f"weekly/{shipments[-1]}") \
            .upload_blob(b"week_start,store_id,product_id,units_shipped\n", overwrite=True)
        assert detect_changes(landing, state)[1] == [shipments[-1]]

    stored = set(data)
    for name in ("mlops/landing.json", "mlops/stores.parquet", "mlops/shipments.parquet", "mlops/alerts.parquet",
                 "mlops/region_model/north/current.json", "mlops/dashboard/index.html"):
        assert name in stored, sorted(stored)[:40]
    for folder in ("quarantine/shipments", "net_demand/north", "features/north", "training_data/north",
                   "holdout_forecasts/north", "scores/north", "drift_metrics/north"):
        assert any(n.startswith(f"mlops/{folder}/") and n.endswith(".parquet") for n in stored), (folder, data[:40])
    model = [n for n in stored if n.startswith("mlops/region_model/north/")]
    assert any(n.endswith("/network.npz") for n in model) and any(n.endswith("/model.json") for n in model), model
    assert any(n.endswith("/MLmodel") for n in mlflow) and any(n.endswith("lineage.json") for n in mlflow)
    assert not any(n.endswith(".tmp") for n in data)  # a blob is committed whole: no temporary files
    # not a byte of data on this machine: Dagster's instance (runs, events) is all that is local
    local = [p for p in home.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES
             and p.name not in ("partitions.json",)]
    assert local == [], local[:10]
    # the account key is in no log, no output, and nowhere on local disk (Dagster's event log included)
    assert AZURITE_KEY not in run.stdout + run.stderr + status.stdout
    assert not [p for p in home.rglob("*") if p.is_file() and AZURITE_KEY.encode() in p.read_bytes()]


@pytest.mark.azure
def test_on_azure_a_failed_write_keeps_the_last_good_file_and_retention_spares_a_model_being_uploaded(
        tmp_path, monkeypatch):
    import json
    import time

    import pandas as pd

    from mlops_assets.errors import ContractError
    from mlops_assets.locations import blob_uri
    from mlops_assets.resources.storage import StorageResource

    with azurite_server(tmp_path / "azurite", containers=("data",)) as connection:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
        storage = StorageResource(root="az://data/mlops", keep_models=1)
        good = pd.DataFrame({"units": [1.0, 2.0]})
        storage.write_parquet("t.parquet", good)
        with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for mixed types
            storage.write_parquet("t.parquet", pd.DataFrame({"units": [1.0, "two"]}))
        pd.testing.assert_frame_equal(storage.read_parquet("t.parquet"), good)  # not a truncated blob

        # the same folder, with or without a trailing slash, is the same landing folder
        storage.claim_landing("az://landing/weekly")
        storage.claim_landing("az://landing/weekly/")
        with pytest.raises(ContractError, match="az://landing/other"):
            storage.claim_landing("az://landing/other")
        # an MLflow dataset source names the account, taken from the connection string
        assert blob_uri(storage.path / "x.parquet") == "wasbs://data@devstoreaccount1.blob.core.windows.net/mlops/x.parquet"

        # retention: the current model and the newest folder stay, even one still being uploaded
        # (no model.json yet); an older one goes
        for version in ("old", "current"):
            storage.write_text(f"region_model/north/{version}/model.json", "{}")
        storage.write_text("region_model/north/current.json", json.dumps({"version": "current"}))
        time.sleep(1.1)  # blob times have a one-second resolution
        storage.write_text("region_model/north/uploading/network.npz", "")
        removed = storage.housekeeping(keep_runs=set())
        assert removed["model folders"] == ["region_model/north/old"], removed
        assert storage.files("region_model/north/uploading", ".npz") == ["network"]
        assert storage.exists("region_model/north/current/model.json")


def test_adls_gen2_takes_its_account_from_the_url_and_its_credentials_from_the_environment(monkeypatch):
    """ADLS Gen2 (abfss://) for real Azure: the account comes from the URL, the secret only from
    the environment, and the location survives being written into config and read back."""
    from mlops_assets.locations import location, url

    for name in [k for k in os.environ if k.startswith("AZURE_STORAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "c2VjcmV0LWtleQ==")
    root = location("abfss://lake@prodacct.dfs.core.windows.net/mlops/storage", "MLOPS_STORAGE_ROOT")
    target = root / "features" / "north" / "2026-11-16.parquet"
    assert target.path == "lake/mlops/storage/features/north/2026-11-16.parquet"
    assert url(target) == "abfss://lake@prodacct.dfs.core.windows.net/mlops/storage/features/north/2026-11-16.parquet"
    assert url(location(url(root))) == url(root)  # what the resources are configured with round-trips
    fs = root.fs  # no request is made until data is read
    assert fs.account_name == "prodacct" and fs.account_key == "c2VjcmV0LWtleQ=="
    assert fs.account_url == "https://prodacct.blob.core.windows.net"  # Blob API on an HNS account
    assert "c2VjcmV0" not in url(root) + repr(root)
    assert location(target) is target  # a location passed on keeps its account


def test_the_storage_resource_and_settings_carry_urls_not_secrets(monkeypatch, tmp_path):
    from mlops_assets.config import Settings
    from mlops_assets.definitions import build_definitions
    from mlops_assets.locations import location

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_STORAGE_ROOT", "abfss://lake@prodacct.dfs.core.windows.net/mlops")
    monkeypatch.setenv("MLOPS_LANDING_DIR", "az://landing/weekly")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"AccountName=x;AccountKey={AZURITE_KEY}")
    settings = Settings.from_env()
    defs = build_definitions(settings)
    storage = defs.resources["storage"]
    assert storage.root == "abfss://lake@prodacct.dfs.core.windows.net/mlops"
    assert defs.resources["landing"].path == "az://landing/weekly"
    assert AZURITE_KEY not in repr(defs.resources)
    with pytest.raises(ValueError, match=r"MLOPS_LANDING_DIR=s3://bucket/x: a local path or an Azure URL"):
        location("s3://bucket/x", "MLOPS_LANDING_DIR")
    assert location(tmp_path / "x") == (tmp_path / "x").resolve()  # a path stays a pathlib.Path
