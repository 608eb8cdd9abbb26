"""One writer per data folder: the lock a run's IO manager holds, released even when its holder is killed."""

import os
import signal
import subprocess
import sys

import pytest

from crm_territory.storage.writer_lock import DataFolderBusy, DataFolderLock
from crm_territory_tests.support import REPO_ROOT


def test_a_second_writer_waits_then_gives_up_naming_the_holder(tmp_path):
    first = DataFolderLock(tmp_path)
    first.acquire("run-aaaaaaaa-1")
    try:
        with pytest.raises(
            DataFolderBusy, match=rf"in use by run run-aaaa \(pid {os.getpid()} on .*waited 0.3 s and wrote nothing"
        ):
            DataFolderLock(tmp_path, wait_seconds=0.3).acquire("run-bbbbbbbb-2")
    finally:
        first.release()
    second = DataFolderLock(tmp_path, wait_seconds=0.3)
    second.acquire("run-bbbbbbbb-2")  # free again: taken at once
    assert second.holder()["run_id"] == "run-bbbbbbbb-2"
    second.release()


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    code = (
        "import sys, time\n"
        "from crm_territory.storage.writer_lock import DataFolderLock\n"
        f"lock = DataFolderLock({str(tmp_path)!r})\n"
        "lock.acquire('doomed-run')\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(DataFolderBusy):
        DataFolderLock(tmp_path, wait_seconds=0.2).acquire("next-run")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    lock = DataFolderLock(tmp_path, wait_seconds=5)
    lock.acquire("next-run")  # the kernel dropped the dead holder's lock: no stale lock to clean by hand
    assert lock.holder()["run_id"] == "next-run"
    lock.release()
