"""Two `cli run`s started together on a fresh DAGSTER_HOME: the instance's storage is created once, under a lock.

Without the lock, processes opening a new SQLite instance at the same moment fail with "table runs already
exists" (seen in the fault suite's two-runs-at-once test, and in 14 of 20 tries of the race below).
"""

import os
import subprocess
import sys
import time

from crm_territory_tests.support import REPO_ROOT

# each process waits for the same instant, then opens the instance: the race as two `make run`s would run it
OPEN_AT = """
import sys, time
from crm_territory.cli import open_instance
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
instance = open_instance()
print(len(instance.get_runs()))
"""


def test_processes_opening_a_fresh_instance_at_once_all_succeed(tmp_path):
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    start = time.time() + 8  # after every interpreter has imported dagster (a few seconds on 2 cores)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, str(start)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4  # one empty instance, readable by all four
