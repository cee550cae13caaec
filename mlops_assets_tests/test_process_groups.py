"""The servers the tests start are stopped with everything they started: a child that ignores
SIGTERM (as Dagster's code server does) must not outlive the test that started its parent."""

import subprocess
import time

from mlops_assets_tests.browsing import _group_members, stop_group


def test_stop_group_kills_a_child_that_ignores_sigterm_once_its_leader_is_gone():
    leader = subprocess.Popen(["bash", "-c", "bash -c 'trap \"\" TERM INT; sleep 300' & sleep 300"],
                              start_new_session=True)
    deadline = time.monotonic() + 10
    while len(_group_members(leader.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_group_members(leader.pid)) >= 3  # the leader, the stubborn child, their sleeps
    started = time.monotonic()
    stop_group(leader, grace=1)
    assert not _group_members(leader.pid)
    assert time.monotonic() - started < 10
