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
    # the leader dies of SIGTERM at once; once, on a loaded machine (.ci/run beside other work), it
    # outlived it for stop_group's full 30 s (a race around bash's fork and exec, not reproduced)
    # and the SIGKILL ended it: here that wait is 3 s, so the test checks the escalation either way
    stop_group(leader, seconds=3, grace=1)
    assert not _group_members(leader.pid)
    assert time.monotonic() - started < 10
