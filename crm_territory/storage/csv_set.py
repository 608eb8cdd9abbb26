"""A run's CSV tables are published as one set: all of them become visible together, or none does.

A run writes each table into its own staging folder, ``<data_dir>/.staging/<run_id>/<layer>/<table>.csv``;
the published tables (``<data_dir>/<layer>/<table>.csv``, the layout of the system we replace) are not
touched while the run works. When the run has succeeded, it publishes:

1. every staged file is flushed to disk;
2. the commit record ``.staging/<run_id>/COMMITTED`` is written (a temp file renamed into place, then
   the folder flushed): **this rename is the instant the run's set becomes the published set**;
3. each staged file is renamed over its published path, and ``published.json`` (which run published
   which table, when) is replaced;
4. the staging folder is removed.

A run killed before step 2 published nothing: its staging folder is removed by the next run, which
says so. A run killed during step 3 has published (its commit record is on disk): readers already see
its files through ``resolve`` and the next run finishes the renames ("rolls forward"). Step 3 is held
under an exclusive lock on ``.publish.lock``, which readers of several tables take shared
(``published_tables``), so no reader sees half of a switch.

Why not per-table atomic renames alone (what we had)? A SIGKILL between two of them left
``assignments_fact`` pointing at 19,413 clients that were no longer in ``client_dim`` and a drop's
quarantined rows nowhere (finding 1 of the fault probe), until the next good run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from crm_territory.schemas import TABLES
from crm_territory.storage.csv_tables import CsvTables, TableNotFoundError

STAGING_DIR = ".staging"
COMMIT_RECORD = "COMMITTED"
PUBLISH_LOCK = ".publish.lock"
PUBLISHED_MANIFEST = "published.json"

Log = Callable[[str], None]


def _fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk: a rename is only durable once both are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomically(path: Path, content: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(content, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class CsvTableSet:
    """The published CSV tables of one data folder, and the staging folders of the runs that write them."""

    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir)
        self.published = CsvTables(self.data_dir)

    # --- where things are ---------------------------------------------------------------------------------
    @property
    def staging_root(self) -> Path:
        return self.data_dir / STAGING_DIR

    def staging_dir(self, run_id: str) -> Path:
        return self.staging_root / run_id

    def staged(self, run_id: str) -> CsvTables:
        return CsvTables(self.staging_dir(run_id))

    def staged_tables(self, run_id: str) -> list[str]:
        """The tables ``run_id`` has staged (those whose file is in its staging folder), in TABLES order."""
        staged = self.staged(run_id)
        return [table for table in TABLES if staged.exists(table)]

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / PUBLISHED_MANIFEST

    @property
    def location(self) -> str:
        """Where this folder's tables live, as materializations record it: the folder's resolved path.

        Resolved, so that two names of one folder are one location and a symlink moved to another volume is another.
        """
        return f"csv:{self.data_dir.resolve()}"

    def published_by(self, table: str) -> str | None:
        """The run that published ``table`` here, from ``published.json`` (None: never published, or the file is gone)."""
        return self.manifest().get(table, {}).get("run_id")

    def manifest(self) -> dict[str, dict[str, str]]:
        """``{table: {"run_id": ..., "published_at": ...}}`` of the published set (empty before the first publish)."""
        try:
            return json.loads(self.manifest_path.read_text()).get("tables", {})
        except (OSError, ValueError):
            return {}

    # --- a run's writes -----------------------------------------------------------------------------------
    def stage(self, run_id: str, table: str, frame: pd.DataFrame) -> Path:
        """Write ``table`` for ``run_id`` where no reader looks: its staging folder."""
        return self.staged(run_id).write(table, frame)

    def read_for_run(self, run_id: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """What ``run_id`` sees of ``table``: its own staged version if it wrote one, else the published one."""
        staged = self.staged(run_id)
        if staged.exists(table):
            return staged.read(table, columns)
        return self.read_published(table, columns)

    # --- publishing ---------------------------------------------------------------------------------------
    def publish(self, run_id: str, log: Log | None = None) -> list[str]:
        """Make every table ``run_id`` staged the published version, as one set; returns the tables published."""
        tables = self.staged_tables(run_id)
        if not tables:
            shutil.rmtree(self.staging_dir(run_id), ignore_errors=True)
            return []
        staged = self.staged(run_id)
        for table in tables:
            _fsync_path(staged.path_for(table))
        for folder in {staged.path_for(table).parent for table in tables}:
            _fsync_path(folder)
        with self._publish_lock(exclusive=True):
            _write_json_atomically(
                self.staging_dir(run_id) / COMMIT_RECORD, {"run_id": run_id, "tables": tables, "committed_at": _utc_now()}
            )
            self._roll_forward(run_id)
        if log:
            log(f"Published {len(tables)} table(s) of run {run_id[:8]} as one set: {', '.join(tables)}")
        return tables

    def _roll_forward(self, run_id: str) -> None:
        """Move a committed run's staged files into place (idempotent: a file already moved is skipped)."""
        record = json.loads((self.staging_dir(run_id) / COMMIT_RECORD).read_text())
        staged = self.staged(run_id)
        moved = []
        for table in record["tables"]:
            source, target = staged.path_for(table), self.published.path_for(table)
            if source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                moved.append(target.parent)
        for folder in set(moved):
            _fsync_path(folder)
        manifest = self.manifest()
        for table in record["tables"]:
            manifest[table] = {"run_id": record["run_id"], "published_at": record["committed_at"]}
        _write_json_atomically(self.manifest_path, {"tables": manifest})
        shutil.rmtree(self.staging_dir(run_id))

    def discard(self, run_id: str, log: Log | None = None, why: str = "") -> list[str]:
        """Drop what ``run_id`` staged without publishing any of it; returns the tables dropped."""
        tables = self.staged_tables(run_id)
        shutil.rmtree(self.staging_dir(run_id), ignore_errors=True)
        if tables and log:
            log(
                f"None of the {len(tables)} table(s) run {run_id[:8]} wrote was published{why}: "
                f"{', '.join(tables)}. The published set is unchanged; re-run once the cause is fixed."
            )
        return tables

    def recover(self, log: Log | None = None) -> dict[str, list[str]]:
        """Finish or drop what runs that died left in staging. Call with the data folder's writer lock held.

        Returns ``{"rolled_forward": [run ids], "removed": [run ids]}``; each action is logged with why.
        """
        done: dict[str, list[str]] = {"rolled_forward": [], "removed": []}
        if not self.staging_root.is_dir():
            return done
        for folder in sorted(self.staging_root.iterdir()):
            run_id = folder.name
            if (folder / COMMIT_RECORD).is_file():
                with self._publish_lock(exclusive=True):
                    self._roll_forward(run_id)
                done["rolled_forward"].append(run_id)
                if log:
                    log(
                        f"Run {run_id[:8]} had published its tables but stopped while moving them into place; "
                        "finished the move (its set was already the one readers saw)."
                    )
            else:
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                files = sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
                done["removed"].append(run_id)
                if log:
                    log(
                        f"Removed the unpublished staging of run {run_id[:8]} ({files} file(s), {size:,} bytes): that run "
                        "stopped before it published, so none of its tables was ever visible; the published set is unchanged."
                    )
        # temp files of the per-table writes of older versions, which a killed run left beside the tables
        for layer in {spec.layer for spec in TABLES.values()}:
            for leftover in (self.data_dir / layer).glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
                if log:
                    log(f"Removed {leftover}, a temp file a killed run left behind.")
        return done

    # --- readers ------------------------------------------------------------------------------------------
    def resolve(self, table: str) -> Path:
        """The file of ``table`` in the published set: a committed run's staged file until it is moved into place."""
        if self.staging_root.is_dir():
            for folder in sorted(self.staging_root.iterdir()):
                candidate = CsvTables(folder).path_for(table)
                if (folder / COMMIT_RECORD).is_file() and candidate.is_file():
                    return candidate
        return self.published.path_for(table)

    def read_published(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        path = self.resolve(table)
        if path != self.published.path_for(table):
            try:
                return CsvTables(path.parents[1]).read(table, columns)  # <staging>/<run_id>/<layer>/<table>.csv
            except TableNotFoundError:
                pass  # moved into place since resolve (a roll-forward; no reader lock held): read it there
        return self.published.read(table, columns)

    def iter_published(self, table: str, rows: int) -> Iterator[pd.DataFrame]:
        """The published table a chunk of about ``rows`` rows at a time, in file order (the file stays open: a
        publish meanwhile replaces the name, not what this reads)."""
        path = self.resolve(table)
        yield from CsvTables(path.parents[1]).iter_read(table, rows)

    def read_published_if_exists(self, table: str) -> pd.DataFrame | None:
        try:
            return self.read_published(table)
        except TableNotFoundError:
            return None

    @contextlib.contextmanager
    def _publish_lock(self, exclusive: bool) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / PUBLISH_LOCK, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def published_tables(data_dir: str | os.PathLike[str]) -> Iterator[CsvTableSet]:
    """Read several published tables as one consistent set: no publish switches the set while the block runs.

    >>> with published_tables("data") as tables:  # doctest: +SKIP
    ...     clients, fact = tables.read_published("client_dim"), tables.read_published("assignments_fact")
    """
    tables = CsvTableSet(data_dir)
    with tables._publish_lock(exclusive=False):
        yield tables
