"""The IO manager every table goes through: one writer per data folder, and a run's tables published as one set.

For the whole run (from the start of its resources to their end) it holds the data folder's writer
lock (``writer_lock``). When the resources start, it first finishes or drops what a run that died left
behind (``recover``). Each output is *staged*: written where no reader looks (a run-scoped folder, or
run-scoped Snowflake tables); inputs read this run's staged version when it has one, else the
published one. When the resources stop, the run's staged tables are published together if the run
succeeded, or dropped with a message if any step failed: readers never see half a run.

This relies on the in-process executor of ``defs/resources.py``: one process holds the run's resources
from its first step to its last, so "when the resources stop" is "when the run ends".
"""

from __future__ import annotations

import logging
from abc import abstractmethod
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
        self._lock = DataFolderLock(self.data_dir, self.lock_wait_seconds)
        lock_for_run(self._lock, context)
        try:
            self.recover(_log(context))  # with the lock held: no other run can be publishing
        except BaseException:
            self._lock.release()
            raise

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
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
        return self.read_for_run(spec_for(context.asset_key).name, input_missing_ok(context))
