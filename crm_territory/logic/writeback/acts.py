"""The write-back acts as the job and the CLI run them: the published plan, the CRM's URL, tokens from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from crm_territory.logic.writeback.apply import ApplySummary, Log, apply_plan, rollback_batch
from crm_territory.logic.writeback.client import CrmWriter, WritebackError
from crm_territory.logic.writeback.journal import Journal, SnowflakeWritebackJournal, WritebackJournal
from crm_territory.logic.writeback.outbound import Exported, OutboundLayout, export_import_files
from crm_territory.settings import Settings
from crm_territory.storage.table_store import TableStore

WRITE_TOKEN_ENV = "CRM_WRITE_TOKEN"
READ_TOKEN_ENV = "CRM_API_TOKEN"


def writer_from_environment(api_url: str, log: Log) -> CrmWriter:
    """A CRM writer with CRM_WRITE_TOKEN (writes) and CRM_API_TOKEN (read-backs); a clear error without the first."""
    token = os.environ.get(WRITE_TOKEN_ENV, "")
    if not token:
        raise WritebackError(
            f"{WRITE_TOKEN_ENV} is not set: export the CRM's write-scope token to apply or roll back (nothing was sent)"
        )
    return CrmWriter(api_url, token, read_token=os.environ.get(READ_TOKEN_ENV) or None, log=log)


@contextmanager
def open_journal(settings: Settings) -> Iterator[Journal]:
    """The log where the storage is: the data folder (local), or CORE.CRM_WRITEBACK_LOG (Snowflake: no local state)."""
    if settings.storage == "snowflake":
        from crm_territory.storage.snowflake import connect_from_environment

        with connect_from_environment() as connection:
            yield SnowflakeWritebackJournal(connection, os.environ["SNOWFLAKE_DATABASE"])
    else:
        yield WritebackJournal(settings.data_dir)


PLAN_CHUNK_ROWS = 5_000  # the plan is read this many rows at a time: the apply's memory does not grow with the plan


def apply_published_plan(store: TableStore, journal: Journal, api_url: str, log: Log) -> ApplySummary:
    """Apply the published ``crm_writeback_plan``, streamed from storage a chunk at a time (twice: refused rows, then
    the batches to send), in plan order."""

    def chunks() -> Iterator[pd.DataFrame]:
        stream = store.iter_previous("crm_writeback_plan", PLAN_CHUNK_ROWS, order_by=["crm_client_id"])
        if stream is None:
            raise WritebackError("no crm_writeback_plan has been published yet: run the pipeline (make run) first")
        return stream

    first = chunks()  # fails before the token is asked for when there is no plan
    with writer_from_environment(api_url, log) as writer:
        return apply_plan(chunks(), journal, writer, log=log, refused=first)


def rollback(batch_id: str, journal: Journal, api_url: str, log: Log) -> ApplySummary:
    with writer_from_environment(api_url, log) as writer:
        return rollback_batch(batch_id, journal, writer, log=log)


def export_published_outbound(plan: pd.DataFrame | None, layouts: dict[str, OutboundLayout], folder: Path) -> list[Exported]:
    """The import files of the published ``crm_outbound_plan``, one per file source, under ``folder`` (data/outbound)."""
    if plan is None:
        raise WritebackError("no crm_outbound_plan has been published yet: run the pipeline (make run) first")
    return export_import_files(plan, layouts, folder)


def batch_totals(log_rows: pd.DataFrame) -> pd.DataFrame:
    """Per batch: its action, records per status and when it was logged (the log's summary)."""
    if log_rows.empty:
        return pd.DataFrame(columns=["batch_id", "action", "logged_at"])
    counts = log_rows.pivot_table(index="batch_id", columns="status", values="crm_client_id", aggfunc="count", fill_value=0)
    first = log_rows.groupby("batch_id").agg(action=("action", "first"), logged_at=("logged_at", "min"))
    return first.join(counts).reset_index().sort_values("logged_at", kind="stable").reset_index(drop=True)
