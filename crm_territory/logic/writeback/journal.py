"""The append-only ``crm_writeback_log``: one append per answered batch, read back to resume.

Local storage: ``<data_dir>/writeback/crm_writeback_log.csv``. Each batch's rows are written with a single
``write`` on a file opened for appending and fsync'd before the next batch is sent, so a killed apply leaves
whole batches: the batches it logged are done, the one in flight is re-sent with its idempotency key (the CRM
replays its answer) and logged then. ``lock()`` keeps two applies on one data folder from interleaving.
"""

from __future__ import annotations

import fcntl
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from crm_territory.schemas import CrmWritebackLog, columns_of, conform, empty_frame

LOG_FILE = "crm_writeback_log.csv"


class WritebackJournal:
    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / "writeback"
        self.path = self.folder / LOG_FILE

    def read(self) -> pd.DataFrame:
        """Every row logged so far (the model's columns and dtypes)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return empty_frame(CrmWritebackLog)
        frame = pd.read_csv(self.path, dtype=str, keep_default_na=False, na_values=[""])
        return conform(frame, CrmWritebackLog)

    def done_batches(self) -> set[str]:
        if not self.path.exists():
            return set()
        return set(pd.read_csv(self.path, usecols=["batch_id"], dtype=str)["batch_id"])

    def append(self, rows: pd.DataFrame) -> None:
        """Append one batch's rows (validated against the model) in one write, then fsync."""
        rows = CrmWritebackLog.validate(rows[columns_of(CrmWritebackLog)])
        self.folder.mkdir(parents=True, exist_ok=True)
        header = not self.path.exists() or self.path.stat().st_size == 0
        buffer = io.StringIO()
        out = rows.copy()
        out["logged_at"] = out["logged_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.to_csv(buffer, index=False, header=header)
        data = buffer.getvalue().encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def lock(self, wait_seconds: float = 30.0) -> Iterator[None]:
        """One write-back at a time on this data folder (an flock, released if the process dies)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "writeback.lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"another write-back holds {self.folder / 'writeback.lock'} (waited {wait_seconds:.0f}s)"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)
