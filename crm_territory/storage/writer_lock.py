"""One writer per data folder: a run holds ``<data_dir>/.crm-territory.lock`` from its start to its end.

The IO manager (CSV or Snowflake: every asset that writes a table uses it; see ``table_set_io``) takes
the lock when the run's resources start and releases it when they stop.

Two runs on one folder (two ``cli run``s, a CLI run and a sensor run, two instances pointed at the same
folder) would interleave their writes: one pull was silently thrown away, a CLI run and a sensor run
overlapped for 12 s. The pool in the instance serialises the runs one instance launches; this lock also
covers what the instance does not see. It is an ``flock``: the kernel releases it when the holder dies,
even by SIGKILL, so a killed run never leaves a lock to clean by hand. The file keeps the holder's run id
and pid, so a run that has to wait (or gives up) says who holds the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

LOCK_NAME = ".crm-territory.lock"


class DataFolderBusy(RuntimeError):
    """Another run holds the data folder, and it did not let go within the wait."""


class DataFolderLock:
    """The writer lock of one data folder; the IO managers take it when a run's resources start and drop it at the end."""

    def __init__(self, data_dir: str | os.PathLike[str], wait_seconds: float = 300.0):
        self.data_dir = Path(data_dir)
        self.wait_seconds = wait_seconds
        self._handle: Any = None

    @property
    def path(self) -> Path:
        return self.data_dir / LOCK_NAME

    def holder(self) -> dict[str, object]:
        """Who holds (or last held) the folder, as the file says."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, run_id: str, log: Callable[[str], None] | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the whole run: the open file is the lock)
        deadline = time.monotonic() + self.wait_seconds
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                who = f"run {str(holder.get('run_id', '?'))[:8]} (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"
                if time.monotonic() >= deadline:
                    handle.close()
                    raise DataFolderBusy(
                        f"The data folder {self.data_dir} is in use by {who} since {holder.get('since', '?')}; waited "
                        f"{self.wait_seconds:g} s and wrote nothing. Re-run when that run has finished."
                    ) from None
                if not waited and log is not None:
                    log(f"Waiting for {who} to finish with {self.data_dir}")
                waited = True
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        handle.write(json.dumps({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "since": since}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the flock
            self._handle = None


def lock_for_run(lock: DataFolderLock, context: dg.InitResourceContext) -> None:
    """Take ``lock`` for the run whose resources are starting; a busy folder fails the run before anything is read."""
    try:
        lock.acquire(context.run_id or "outside a run", log=context.log.info if context.log else None)
    except DataFolderBusy as busy:
        raise dg.Failure(str(busy)) from busy
