import atexit
import functools
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops_assets.sample import SampleSpec, generate

# MLOPS_TEST_SEED shifts every seed of the test data: the suite must pass on other data of the
# same shape too, not only on the draws it was written on
SEED = int(os.environ.get("MLOPS_TEST_SEED", "0"))
# 22 weeks (2026-06-15 .. 2026-11-09): every week range the tests name, and no more: a run's cost is
# mostly Dagster's per-week bookkeeping
SMALL = dict(regions=("north", "south"), stores_per_region=4, products=10, weeks=22, end_week="2026-11-09",
             seed=3 + SEED)
# the smallest set on which every segment trains (about 500-1100 rows each): seconds per region
# Without the realism too: these tests are about training, gates and releases, and on so few series
# a closure or an unannounced promotion decides whether a candidate beats its champion.
TRAINABLE = dict(regions=("north", "south"), stores_per_region=6, products=12, weeks=60, end_week="2026-11-09",
                 seed=5 + SEED, realism=False)


# two years, so a model's reference spans every season, and enough series (128 per region) for a
# week's demand to be told from the reference's own week-to-week variation. With the sample's
# realism (closures, promotions nobody announced, outliers, long tails): the monitor must find the
# tests' change in demand shaped like the real thing, and nothing in the region left as it was.
LOOP = dict(regions=("north", "south"), stores_per_region=8, products=16, weeks=106, end_week="2026-11-09",
            seed=5 + SEED)


@pytest.fixture(scope="session")
def loop_landing_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loop_template")
    generate(SampleSpec(out_dir=out, **LOOP))
    return out


@pytest.fixture(scope="session")
def small_landing_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("landing_template")
    generate(SampleSpec(out_dir=out, **SMALL))
    return out


@pytest.fixture(scope="session")
def trainable_landing_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trainable_template")
    generate(SampleSpec(out_dir=out, **TRAINABLE))
    return out


@pytest.fixture
def small_landing(small_landing_template, tmp_path) -> Path:
    """A fresh, writable copy of a small valid landing folder."""
    out = tmp_path / "landing"
    shutil.copytree(small_landing_template, out)
    return out


TOY_COVERAGE_TOL = "0.5"  # see isolated_env


@functools.cache
def blank_mlflow_store() -> Path:
    """An empty MLflow SQLite store, made by MLflow itself once per test process. Creating one runs
    MLflow's schema migrations (2-3 s of CPU); a fresh home gets a copy of this one instead, the
    same bytes MLflow would write there (its own experiment is created in it on first use)."""
    from mlflow import MlflowClient

    folder = tempfile.mkdtemp(prefix="mlops-blank-mlflow-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(uri, uri).search_registered_models()  # creates the tracking and registry tables
    return path


def isolated_env(mp: pytest.MonkeyPatch, root: Path, landing: Path) -> None:
    """Point every setting at ``root`` so a test never touches the developer's .mlops/."""
    mp.setenv("MLOPS_HOME", str(root / "home"))
    mp.setenv("DAGSTER_HOME", str(root / "home" / "dagster"))
    store = root / "home" / "dagster" / "mlflow" / "mlflow.db"  # config.Settings' default store
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blank_mlflow_store(), store)
    mp.setenv("MLOPS_LANDING_DIR", str(landing))
    mp.delenv("MLOPS_STORAGE_ROOT", raising=False)
    mp.delenv("MLOPS_FIRST_WEEK", raising=False)
    mp.delenv("MLOPS_FIRST_SCORED_WEEK", raising=False)
    mp.delenv("MLOPS_ENV", raising=False)
    # the trainable toy (6 stores, 60 weeks, no full year) drifts through its 13 holdout weeks
    # faster than its small models follow: 0.57 to 0.75 of actuals below their P90 where the
    # validation weeks calibrated 0.90. The tests are about the system around the models; the
    # coverage rule has its own test (test_models) and the band its benchmark (bench/peers.py)
    mp.setenv("MLOPS_COVERAGE_TOL", TOY_COVERAGE_TOL)


@pytest.fixture
def env(tmp_path, small_landing, monkeypatch) -> Path:
    isolated_env(monkeypatch, tmp_path, small_landing)
    return small_landing


def edit_csv(path: Path, line: int, text: str) -> None:
    """Replace line ``line`` (1 = header) of a CSV file."""
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


@contextmanager
def isolated_home(template: Path, tmp_path_factory, name: str):
    """A copy of ``template`` as the landing folder and a fresh home around it, for a module's
    fixture: every setting points into it until the module is done. Yields the landing folder."""
    root = tmp_path_factory.mktemp(name)
    landing = root / "landing"
    shutil.copytree(template, landing)
    with pytest.MonkeyPatch.context() as mp:
        isolated_env(mp, root, landing)
        yield landing


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, driven by Playwright (its own browser download is not reachable here)."""
    from playwright.sync_api import sync_playwright

    from mlops_assets_tests.browsing import ARTIFACTS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run does), set MLOPS_CHROMIUM, "
                    "or deselect these tests with -m 'not browser'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


# `make test` runs three modules at a time (pytest-xdist, --dist loadfile --no-loadscope-reorder),
# each handed out in this order as a process comes free: the long ones first, so no long module
# starts last and runs alone at the end. Busy seconds per module on 2 cores (measured 2026-12-06,
# a timeline of a full `make test`); a module not listed goes after these, in its usual order.
# Modules of one or two long tests (azure, distributed) go early: xdist hands a process its next
# module as soon as two of its tests are left, so one of them late ends the suite alone.
MODULE_SECONDS = {"test_training_pipeline": 217, "test_pipeline": 203, "test_azure": 140, "test_distributed": 110,
                  "test_contract_allowances": 216, "test_registry": 203, "test_monitoring_loop": 190,
                  "test_faults_training": 107, "test_postgres": 50, "test_faults": 36, "test_cli": 37,
                  "test_models": 20, "test_deployment_run": 300}
ORDER = list(MODULE_SECONDS)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: ORDER.index(item.path.stem) if item.path.stem in ORDER else len(ORDER))
