"""The IO manager every table goes through: one writer per data folder, and a run's tables published as one set.

For the whole run (from the start of its resources to their end) it holds the data folder's writer
lock (``writer_lock``). When the resources start, it first finishes or drops what a run that died left
behind (``recover``). Each output is *staged*: written where no reader looks (a run-scoped folder, or
run-scoped Snowflake tables); inputs read this run's staged version when it has one, else the
published one. When the resources stop, the run's staged tables are published together if the run
succeeded, or dropped with a message if any step failed: readers never see half a run.

This relies on the in-process executor of ``defs/resources.py``: one process holds the run's resources
from its first step to its last, so "when the resources stop" is "when the run ends".

A table read for a check is kept for the next steps that read it (``ReadCache``): at a million rows a
table is read by up to nine steps (its checks, the assets downstream and theirs), and each read of the
file costs seconds. No step sees another's changes: a check gets a copy, an asset takes the table itself.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections import OrderedDict
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from crm_territory.resources.fixed_at_load import FixedAtLoad
from crm_territory.storage.table_store import STORAGE_LOCATION, input_missing_ok, spec_for
from crm_territory.storage.writer_lock import DataFolderLock, lock_for_run

# What makes a run's tables unfit to publish: a step that failed (a blocking check that failed fails its
# step too), or a run being cancelled.
_UNPUBLISHABLE = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_CANCELING}

RunLog = dg.DagsterLogManager | logging.Logger


def _log(context: dg.InitResourceContext) -> RunLog:
    return context.log or dg.get_dagster_logger()


def why_not_publish(context: dg.InitResourceContext) -> str | None:
    """None if the run's tables may be published; else the reason, in words (the failed steps)."""
    if context.instance is None or context.run is None:
        return None  # outside a run (a direct call of the resource): nothing to consult, publish what was written
    records = context.instance.get_records_for_run(context.run.run_id, of_type=_UNPUBLISHABLE).records
    if not records:
        return None
    steps = sorted({r.event_log_entry.step_key for r in records if r.event_log_entry.step_key})
    if steps:
        return f" because step(s) {', '.join(steps)} failed"
    return " because the run was cancelled"


class ReadCache:
    """Tables this run read for its checks, kept for the next steps that read them: read from storage once, not per step.

    A check step gets its own copy (a deep copy copies the column arrays, for text the references and not the
    strings: ~0.1 s a million rows, against seconds to read the file). An asset step takes the kept table
    itself (``take``): no copy where the run's memory peaks, and the step may change it, so it is then
    forgotten. When an asset step starts reading, the large tables it does not read are dropped (``keep_only``):
    the cache adds memory only while checks run, never under an asset's computation.

    It holds every small table (under ``SMALL_ROWS`` rows) and the ``LARGE_TABLES`` large ones read most
    recently: the steps run in dependency order, so a table's checks come close together. A table this run
    writes is forgotten (``forget``): its next read is the new version.
    """

    SMALL_ROWS = 10_000
    LARGE_TABLES = 2

    def __init__(self) -> None:
        self._frames: OrderedDict[str, pd.DataFrame] = OrderedDict()

    def copy_of(self, table: str) -> pd.DataFrame | None:
        frame = self._frames.get(table)
        if frame is None:
            return None
        self._frames.move_to_end(table)
        return frame.copy(deep=True)

    def take(self, table: str) -> pd.DataFrame | None:
        return self._frames.pop(table, None)

    def put(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Keep ``frame`` (as read) for the next readers; returns the caller's own copy."""
        self._frames[table] = frame
        self._frames.move_to_end(table)
        large = [name for name, kept in self._frames.items() if len(kept) >= self.SMALL_ROWS]
        for name in large[: max(0, len(large) - self.LARGE_TABLES)]:
            del self._frames[name]
        return frame.copy(deep=True)

    def keep_only(self, tables: set[str]) -> None:
        """Drop the large tables not named."""
        for name in [n for n, kept in self._frames.items() if len(kept) >= self.SMALL_ROWS and n not in tables]:
            del self._frames[name]

    def forget(self, table: str) -> None:
        self._frames.pop(table, None)

    def clear(self) -> None:
        self._frames.clear()


def _reading_step(context: dg.InputContext) -> tuple[bool, set[str]] | None:
    """(whether the reading step is a check's alone, the tables its asset reads), or None outside a run's step."""
    try:
        step = context.step_context
        layer = step.job_def.asset_layer
        outputs = step.step.step_outputs
        checks_only = bool(outputs) and all(layer.get_asset_check_key_for_node_output(step.node_handle, o.name) for o in outputs)
        assets_def = layer.get_assets_def_for_node(step.node_handle)
        reads = {key.path[-1] for key in assets_def.keys_by_input_name.values()} if assets_def is not None else set()
    except Exception:  # a context built outside a run (tests, direct calls): read from storage, keep nothing
        return None
    return checks_only, reads


class TableSetIOManager(FixedAtLoad, dg.ConfigurableIOManager):
    """Base of the CSV and Snowflake IO managers: the lock, recovery, staging and the publish of the set.

    ``data_dir`` (and the Snowflake connection) are fixed when the definitions load: no run config moves the
    tables elsewhere (``FixedAtLoad``).
    """

    data_dir: str
    lock_wait_seconds: float = 300.0
    """How long a run waits for another run writing the same data folder before it gives up."""

    _lock: Any = PrivateAttr(default=None)
    _run_id: str = PrivateAttr(default="")
    _reads: ReadCache = PrivateAttr(default_factory=ReadCache)

    # --- what a back-end provides -------------------------------------------------------------------------
    @abstractmethod
    def recover(self, log: RunLog) -> None:
        """Finish a publish a dead run had committed; drop what dead runs staged; log each."""

    @abstractmethod
    def stage(self, table: str, frame: pd.DataFrame) -> dict[str, dg.RawMetadataValue]:
        """Write ``table`` for this run where no reader looks; returns metadata for the output."""

    @abstractmethod
    def storage_location(self, table: str) -> str:
        """Where ``table`` is published (a folder's path; an account, database and schema), never a credential."""

    @abstractmethod
    def read_for_run(self, table: str, missing_ok: bool) -> pd.DataFrame | None:
        """This run's staged ``table`` if it wrote one, else the published one.

        A table never written is None when ``missing_ok`` (see ``missing_ok_input``), else an error.
        """

    def read_columns_for_run(self, table: str, columns: list[str]) -> pd.DataFrame:
        """``read_for_run`` of only ``columns`` (a table that must exist): for steps that need a few columns of a
        large table. This default reads the whole table; the CSV storage parses only those columns."""
        frame = self.read_for_run(table, missing_ok=False)
        assert frame is not None
        return frame[columns]

    def read_in_step(self, table: str) -> pd.DataFrame:
        """``table`` for an asset step that reads it itself, as a dependency rather than an input, so that it can let
        the frame go once it has what it needs (an input stays referenced by Dagster until the step ends): the copy the
        checks kept, taken, else this run's or the published version from storage. Like an input, it drops the other
        large tables the checks kept."""
        self._reads.keep_only({table})
        frame = self._reads.take(table)
        if frame is None:
            frame = self.read_for_run(table, missing_ok=False)
        assert frame is not None  # missing_ok=False: a missing table raises
        return frame

    @abstractmethod
    def publish(self, log: RunLog) -> None:
        """Make every table this run staged visible, together."""

    @abstractmethod
    def discard(self, log: RunLog, why: str) -> None:
        """Drop what this run staged, publishing none of it."""

    # --- the run's life -----------------------------------------------------------------------------------
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)  # refuses a redirecting run config before the lock: nothing waits or is held
        self._run_id = context.run.run_id if context.run is not None else "outside-a-run"
        self._reads.clear()
        self._lock = DataFolderLock(self.data_dir, self.lock_wait_seconds)
        lock_for_run(self._lock, context)
        try:
            self.recover(_log(context))  # with the lock held: no other run can be publishing
        except BaseException:
            self._lock.release()
            raise

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._reads.clear()
        if self._lock is None:
            return
        try:
            why = why_not_publish(context)
            if why is None:
                self.publish(_log(context))
            else:
                self.discard(_log(context), why)
        finally:
            self._lock.release()
            self._lock = None

    # --- Dagster's side -----------------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        table = spec_for(context.asset_key).name
        self._reads.forget(table)  # before staging: a failed write must not leave the older version to be read
        metadata = self.stage(table, obj)
        context.add_output_metadata(
            {
                **metadata,
                # the guards compare a missing table only with what was published to the same place (wiring/guards.py)
                STORAGE_LOCATION: self.storage_location(table),
                "published": "with the run's other tables, when the run succeeds",
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        table = spec_for(context.asset_key).name
        step = _reading_step(context)
        if step is None:
            return self.read_for_run(table, input_missing_ok(context))
        checks_only, reads = step
        if checks_only:
            kept = self._reads.copy_of(table)
            if kept is not None:
                return kept
            frame = self.read_for_run(table, input_missing_ok(context))
            return None if frame is None else self._reads.put(table, frame)
        self._reads.keep_only(reads)
        kept = self._reads.take(table)
        return kept if kept is not None else self.read_for_run(table, input_missing_ok(context))
