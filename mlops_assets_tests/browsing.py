"""Browser-test helpers: Debian's chromium through Playwright, servers started as process groups.

The browser tests (marker ``browser``, run alone with ``pytest -m browser``) live beside the home
they look at (test_training_pipeline.py), so they reuse its run instead of making another.
Screenshots go to ``test-artifacts/browser/``.
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

from mlops_assets.config import REPO_ROOT

CHROMIUM = os.environ.get("MLOPS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(group: int) -> list[int]:
    """The live (not zombie) processes of process group ``group``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone while listed
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def stop_group(proc: subprocess.Popen, seconds: float = 30, grace: float = 3) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and everything it started; SIGKILL
    the group if its leader is still there after ``seconds``, or if anything else of it is still
    there ``grace`` seconds after the leader ended; returns once the group is gone (at most 5 s
    after a SIGKILL). The leader ending is not enough: a Dagster code server (``dagster api grpc``)
    shares its group and ignores SIGTERM and SIGINT, and outlived its daemon by an hour."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # the group is gone already (a daemon that exited on its own)
        proc.wait()
        return
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + grace
    while proc.poll() is not None and _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is None or _group_members(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # a killed process is gone when the kernel has reaped its memory, not when kill returns
        deadline = time.monotonic() + 5
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.wait()


@contextmanager
def serving(cmd: list[str], url: str, log: Path, seconds: int = 120):
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
        stop_group(proc, 10)


def dismiss_prompt(page) -> None:
    """Dagster's first-visit newsletter dialog covers the page until skipped."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=3_000)
    except PlaywrightTimeout:
        pass


def open_page(page, url: str, expect: str, shot: str):
    """Go to ``url``, wait until ``expect`` shows and the data has loaded, screenshot."""
    page.goto(url)
    page.get_by_text(expect, exact=False).first.wait_for(timeout=30_000)
    dismiss_prompt(page)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page.inner_text("body")


def graphql(base: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{base}/graphql",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  status numPartitions runs(limit: 10) { runId status } } } }"""


def finished_backfill(base: str, instance, backfill_id: str, seconds: int = 240) -> dict:
    """The backfill once its run has finished (the daemon marks the backfill itself done up to 30 s later)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if runs and all(r.is_finished for r in runs):
            return graphql(base, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        time.sleep(1)
    pytest.fail(f"backfill {backfill_id} did not finish in {seconds} s")


