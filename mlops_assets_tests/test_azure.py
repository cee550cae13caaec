"""MLflow's artifacts on Azure Blob Storage, against Azurite started by the test on 127.0.0.1:
every model the registry serves is uploaded to and loaded back from the blob container."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets_tests.servers import azurite_server

pytestmark = pytest.mark.azure
BIN = Path(sys.executable).parent
LOAD = """
import pandas as pd
from mlops_assets.config import Settings
from mlops_assets.registry.releases import registry_for
settings = Settings.from_env()
registry = registry_for(settings)
release = registry.release("north", "1")
model = registry.load_forecast_model(release)  # downloaded from the blob container
rows = pd.read_parquet(settings.storage_root / "features" / "north" / "2026-11-16.parquet")
print("forecasts", len(model.predict(rows)))
"""


def test_the_registry_keeps_and_serves_its_models_from_azure_blob_storage(small_landing_template, tmp_path):
    landing, home = tmp_path / "landing", tmp_path / "home"
    shutil.copytree(small_landing_template, landing)
    with azurite_server(tmp_path / "azurite") as connection:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
        env.update(MLOPS_HOME=str(home), MLOPS_LANDING_DIR=str(landing),
                   # credentials only from the environment: MLflow's Azure artifact store reads them there
                   AZURE_STORAGE_CONNECTION_STRING=connection,
                   MLOPS_MLFLOW_ARTIFACTS="wasbs://mlflow@devstoreaccount1.blob.core.windows.net/artifacts")
        run = subprocess.run([str(BIN / "mlops-assets"), "run", "--regions", "north"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        # the registered model loads back from the container, and forecasts (what scoring does)
        load = subprocess.run([sys.executable, "-c", LOAD], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert load.returncode == 0 and "forecasts" in load.stdout, load.stderr[-3000:]

        from azure.storage.blob import BlobServiceClient

        blobs = [b.name for b in BlobServiceClient.from_connection_string(connection)
                 .get_container_client("mlflow").list_blobs()]
    assert any(name.endswith("/MLmodel") for name in blobs), blobs[:20]
    assert any(name.endswith("lineage.json") for name in blobs), blobs[:20]
    assert not (home / "dagster" / "mlflow" / "artifacts").exists()  # not a byte of them on local disk
    assert connection.split("AccountKey=")[1].split(";")[0] not in run.stdout + run.stderr  # never logged
