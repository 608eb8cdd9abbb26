"""The append-only ``crm_writeback_log``: one append per answered batch, read back to resume.

Two journals behind one interface (``Journal``), chosen by the storage (``CRM_STORAGE``):

- ``WritebackJournal`` (local): ``<data_dir>/writeback/crm_writeback_log.csv``. Each batch's rows are written with a
  single ``write`` on a file opened for appending and fsync'd before the next batch is sent. ``lock()`` is an
  ``flock`` on the data folder.
- ``SnowflakeWritebackJournal``: ``CORE.CRM_WRITEBACK_LOG``, one load per batch (a single COPY: all of the batch's
  rows or none), and ``lock()`` a lease row in ``CORE.CRM_WRITEBACK_LEASE``. Nothing is kept on the machine, so an
  apply killed on one machine resumes from another.

Either way a killed apply leaves whole batches: the batches it logged are done, the one in flight is re-sent with
its idempotency key (the CRM replays its answer) and logged then.
"""

from __future__ import annotations

import fcntl
import io
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from crm_territory.schemas import JOURNAL_TABLES, CrmWritebackLog, columns_of, conform, empty_frame

LOG_FILE = "crm_writeback_log.csv"


class Journal(Protocol):
    location: str
    """Where the log is, for messages (a path, or DATABASE.CORE.CRM_WRITEBACK_LOG)."""

    def read(self) -> pd.DataFrame: ...
    def done_batches(self) -> set[str]: ...
    def append(self, rows: pd.DataFrame) -> None: ...
    def lock(self, wait_seconds: float = 30.0) -> AbstractContextManager[Any]: ...
    def renew(self) -> None: ...


class WritebackJournal:
    """The log as a CSV file in the data folder, locked with an flock (released by the kernel if the holder dies)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / "writeback"
        self.path = self.folder / LOG_FILE
        self.location = str(self.path)

    def renew(self) -> None:
        """An flock needs no renewal: it lasts as long as the process."""

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


LEASE_NAME = "crm_writeback"
LEASE_SECONDS = 120  # renewed after every batch (a batch takes well under a second); a killed apply's lapses in 2 min


class WritebackBusy(TimeoutError):
    """Another apply holds the write-back (the message names it and until when)."""


class SnowflakeWritebackJournal:
    """The log as ``CORE.CRM_WRITEBACK_LOG`` and the lock as a lease row in ``CORE.CRM_WRITEBACK_LEASE``.

    ``connection`` is an open Snowflake DB-API connection (the caller's; one for the whole apply, since a
    login costs more than a batch). The tables come from ``infra/snowflake/tables.sql`` (``cli apply-ddl``).
    """

    def __init__(self, connection: Any, database: str, lease_seconds: int = LEASE_SECONDS) -> None:
        self.connection = connection
        self.database = database
        self.lease_seconds = lease_seconds
        self.log_table = f"{database}.{JOURNAL_TABLES['crm_writeback_log'].warehouse_name}"
        self.lease_table = f"{database}.{JOURNAL_TABLES['crm_writeback_lease'].warehouse_name}"
        self.location = self.log_table
        # host:pid:token: the pid says whether a holder on this host is still alive; the token tells two of our own
        # journals apart (a test, or a job and a CLI in one process)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def read(self) -> pd.DataFrame:
        from crm_territory.storage.snowflake import read_table

        frame = read_table(self.connection, self.database, JOURNAL_TABLES["crm_writeback_log"])
        return frame.sort_values(["logged_at", "batch_id"], kind="stable").reset_index(drop=True)

    def done_batches(self) -> set[str]:
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT DISTINCT BATCH_ID FROM {self.log_table}")
        return {row[0] for row in cursor.fetchall()}

    def append(self, rows: pd.DataFrame) -> None:
        """Insert one batch's rows (validated against the model) in one statement: the batch is logged whole or not at all.

        A multi-row INSERT with bound values, not ``write_pandas``: 200 rows need no stage, and its stage commands
        would commit whatever transaction the caller has open.
        """
        rows = CrmWritebackLog.validate(rows[columns_of(CrmWritebackLog)])
        out = rows.astype(object).where(rows.notna(), None)
        out["logged_at"] = rows["logged_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        columns = ", ".join(c.upper() for c in out.columns)
        marks = ", ".join(["%s"] * len(out.columns))
        # rows as tuples: the DB-API's bound parameters; at most 200 rows a batch, next to an HTTP round trip
        self.connection.cursor().executemany(
            f"INSERT INTO {self.log_table} ({columns}) VALUES ({marks})", list(out.itertuples(index=False, name=None))
        )

    def _take(self) -> bool:
        cursor = self.connection.cursor()
        cursor.execute(
            f"INSERT INTO {self.lease_table} (NAME) SELECT %s WHERE NOT EXISTS (SELECT 1 FROM {self.lease_table} WHERE NAME = %s)",
            (LEASE_NAME, LEASE_NAME),
        )
        cursor.execute(
            f"UPDATE {self.lease_table} SET HOLDER = %s, ACQUIRED_AT = CURRENT_TIMESTAMP(), "
            f"EXPIRES_AT = DATEADD(second, %s, CURRENT_TIMESTAMP()) "
            f"WHERE NAME = %s AND (HOLDER IS NULL OR HOLDER = %s OR EXPIRES_AT < CURRENT_TIMESTAMP())",
            (self.holder, self.lease_seconds, LEASE_NAME, self.holder),
        )
        return cursor.rowcount == 1

    def _holder(self) -> tuple[str | None, Any]:
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT HOLDER, EXPIRES_AT FROM {self.lease_table} WHERE NAME = %s", (LEASE_NAME,))
        row = cursor.fetchone()
        return (row[0], row[1]) if row else (None, None)

    def _release_if_dead(self, holder: str | None) -> None:
        """A holder on this host whose process is gone (killed) lets go now rather than when its lease lapses."""
        if not holder:
            return
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            cursor = self.connection.cursor()
            cursor.execute(f"UPDATE {self.lease_table} SET HOLDER = NULL WHERE NAME = %s AND HOLDER = %s", (LEASE_NAME, holder))
        except PermissionError:
            pass  # alive, another user's

    def renew(self) -> None:
        """Push the lease's expiry on (after every batch): a live apply never loses it."""
        cursor = self.connection.cursor()
        cursor.execute(
            f"UPDATE {self.lease_table} SET EXPIRES_AT = DATEADD(second, %s, CURRENT_TIMESTAMP()) WHERE NAME = %s AND HOLDER = %s",
            (self.lease_seconds, LEASE_NAME, self.holder),
        )
        if cursor.rowcount != 1:
            raise WritebackBusy(
                f"the write-back lease in {self.lease_table} was taken over (this apply stalled past its {self.lease_seconds}s "
                "lease): stopping before the next batch; the log holds every batch sent so far"
            )

    @contextmanager
    def lock(self, wait_seconds: float = 30.0) -> Iterator[None]:
        from crm_territory.storage.snowflake import require_table

        for spec in JOURNAL_TABLES.values():  # a deployment that skipped the DDL is told which command to run
            require_table(self.connection.cursor(), self.database, spec)
        deadline = time.monotonic() + wait_seconds
        while not self._take():
            holder, expires = self._holder()
            self._release_if_dead(holder)
            if time.monotonic() > deadline:
                raise WritebackBusy(
                    f"another write-back holds the lease in {self.lease_table} ({holder}, until {expires}; waited "
                    f"{wait_seconds:.0f}s): wait for it to end, or for its lease to lapse if it was killed"
                )
            time.sleep(0.5)
        try:
            yield
        finally:
            cursor = self.connection.cursor()
            cursor.execute(
                f"UPDATE {self.lease_table} SET HOLDER = NULL WHERE NAME = %s AND HOLDER = %s", (LEASE_NAME, self.holder)
            )
