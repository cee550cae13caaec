"""The Dagster UI and the dashboards in a real browser (Debian's chromium, driven by Playwright).

Run alone with ``pytest -m browser``. Screenshots go to ``test-artifacts/browser/``.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.config import REPO_ROOT, Settings
from mlops_assets.definitions import build_definitions
from mlops_assets.runner import run_pipeline
from mlops_assets_tests.conftest import isolated_home

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MLOPS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run does), set MLOPS_CHROMIUM, "
                    "or deselect these tests with -m 'not browser'")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def home(trainable_landing_template, tmp_path_factory):
    """A home after `mlops-assets run` on a small landing folder whose regions train and pass their
    gates: runs, checks, champions, scores, drift and the dashboard."""
    with isolated_home(trainable_landing_template, tmp_path_factory, "browser") as landing:
        summary = run_pipeline(landing)
        yield summary, dg.DagsterInstance.get()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(cmd: list[str], url: str, log: Path, seconds: int = 120):
    """``cmd`` as its own process group until ``url`` answers; stopped (the group) afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(cmd)} did not serve {url}:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _dismiss_prompt(page) -> None:
    """Dagster's first-visit newsletter dialog covers the page until skipped."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=3_000)
    except PlaywrightTimeout:
        pass


def _open(page, url: str, expect: str, shot: str):
    """Go to ``url``, wait until ``expect`` shows and the data has loaded, screenshot."""
    page.goto(url)
    page.get_by_text(expect, exact=False).first.wait_for(timeout=30_000)
    _dismiss_prompt(page)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page.inner_text("body")


def _graphql(base: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  status numPartitions runs(limit: 10) { runId status } } } }"""


def _finished_backfill(base: str, instance, backfill_id: str, seconds: int = 240) -> dict:
    """The backfill once its run has finished (the daemon marks the backfill itself done up to 30 s later)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if runs and all(r.is_finished for r in runs):
            return _graphql(base, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        time.sleep(1)
    pytest.fail(f"backfill {backfill_id} did not finish in {seconds} s")


def test_the_dagster_ui_shows_lineage_runs_under_their_job_checks_per_region_and_backfills(home, browser, tmp_path):
    summary, instance = home
    port = _port()
    base = f"http://127.0.0.1:{port}"
    # the webserver and the daemon, as `mlops-assets ui` starts them (the daemon runs UI backfills)
    cmd = [str(BIN / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    errors = []
    with _serving(cmd, f"{base}/server_info", tmp_path / "dagster_dev.log"):
        # a backfill of all of north's weeks of net_demand, launched as the UI's dialog launches it
        # (the week after the last delivery and the week in progress have no shipments)
        keys = build_definitions(Settings.from_env()).resolve_assets_def("net_demand").partitions_def \
            .get_partition_keys(dynamic_partitions_store=instance)
        north = [k for k in keys if k.startswith("north|")]
        launched = _graphql(base, LAUNCH_BACKFILL, {"p": {"partitionNames": north,
                                                         "assetSelection": [{"path": ["net_demand"]}]}})
        backfill_id = launched["launchPartitionBackfill"]["backfillId"]

        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # the asset graph: region_model between its features and the scores it serves
        _open(page, f"{base}/assets/region_model?view=lineage", "region_model", "lineage_region_model")
        graph = page.locator("svg, [data-testid]").first
        assert graph.count() == 1
        for node in ("features", "scores", "region_model"):
            assert page.get_by_text(node, exact=True).count() >= 1, node

        # the runs `mlops-assets run` launched are the training job's (issue: "No runs found")
        trained = instance.get_runs(filters=dg.RunsFilter(job_name="training"))
        assert len(trained) == 2
        text = _open(page, f"{base}/locations/mlops_assets/jobs/training/runs", trained[0].run_id[:8],
                     "training_job_runs")
        assert "No runs found" not in text
        for run in trained:
            assert run.run_id[:8] in text

        # a gate check's history names the region of each evaluation
        text = _open(page, f"{base}/assets/region_model?view=checks&checkDetail=performance", "performance",
                     "check_performance")
        history = page.get_by_text("Execution history", exact=True)
        history.first.click()
        page.get_by_text("north", exact=True).first.wait_for(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "check_performance_history.png"), full_page=True)
        text = page.inner_text("body")
        assert "north" in text and "south" in text

        # one week's partition of a range run shows its own figures, not the range's
        week = summary.last_week
        text = _open(page, f"{base}/assets/net_demand?view=partitions&partition=north%7C{week}", "status",
                     "net_demand_partition")
        assert "built" in text and "run covered" in text

        # the backfill launched first, checked last: the daemon takes it up within 30 s
        state = _finished_backfill(base, instance, backfill_id)
        assert state["numPartitions"] == len(north)
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert run.status == dg.DagsterRunStatus.SUCCESS  # one run for all 106 weeks, none failed
        text = _open(page, f"{base}/runs/b/{backfill_id}?tab=partitions", f"{len(north)} partitions",
                     "backfill_all_weeks_north")
        for key in north:
            [record] = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("net_demand"), asset_partitions=[key]), limit=1).records
            assert record.run_id == run.run_id
            status = record.asset_materialization.metadata["status"].value
            if key.split("|")[1] > summary.last_week:  # no shipments yet
                assert status.startswith("skipped: no shipments have landed for this week yet"), key
            else:
                assert status == "built", key
    assert not errors, errors


def test_the_dashboard_renders_its_three_views_without_errors(home, browser, tmp_path):
    port = _port()
    url = f"http://127.0.0.1:{port}/"
    with _serving([str(BIN / "mlops-assets"), "dashboard", "--port", str(port)], url, tmp_path / "dashboard.log"):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        console, failed = [], []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console.append(str(exc)))
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(url)
        page.wait_for_load_state("networkidle")
        for view in ("business", "data-science", "support"):
            section = page.locator(f"section#{view}")
            assert section.is_visible()
            assert section.locator("svg, table").count() >= 2, view
            section.screenshot(path=str(ARTIFACTS / f"dashboard_{view}.png"))
        # per region: two business charts, a drift map, a versions chart, two charts per segment
        assert page.locator("svg").count() >= 2 * (4 + 2 * 4)
        # lineage links on the figures: model versions (MLflow) and Dagster runs
        assert page.locator("a[href*='/#/models/demand-forecast-north/versions/']").count() >= 1
        assert page.locator("a[href*='/runs/']").count() >= 5
    assert not console and not failed, (console, failed)
