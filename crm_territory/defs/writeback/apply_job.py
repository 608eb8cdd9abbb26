"""Applying the write-back plan, or rolling a batch back: an explicit act, never part of an ingest run."""

from typing import Literal

import dagster as dg
import pandas as pd

from crm_territory.logic.writeback.acts import (
    apply_published_plan,
    batch_totals,
    export_published_outbound,
    open_journal,
    rollback,
)
from crm_territory.logic.writeback.client import WritebackError
from crm_territory.logic.writeback.outbound import outbound_layouts
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.resources.landing import LandingZone
from crm_territory.settings import load_settings
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring.metadata import markdown_table


class WritebackConfig(dg.Config):
    action: Literal["apply", "rollback", "export"] = "apply"
    """apply: send the published crm_writeback_plan's batches not yet logged; rollback: undo batch_id; export: write
    the published crm_outbound_plan as one import file per file source under data/outbound/ (nothing is sent)."""
    batch_id: str = ""
    """The batch to roll back (crm_writeback_log.batch_id); only with action rollback."""


@dg.op(
    description="Apply the published crm_writeback_plan to the CRM in batches of 200 (resumable, conflict-safe), or "
    "roll a batch back; every record's outcome goes to crm_writeback_log. Needs CRM_WRITE_TOKEN."
)
def apply_crm_writeback(
    context: dg.OpExecutionContext,
    config: WritebackConfig,
    table_store: TableStore,
    crm_api: CrmApiResource,
    landing: LandingZone,
) -> None:
    settings = load_settings()
    if config.action == "export":
        try:
            exported = export_published_outbound(
                table_store.read_previous("crm_outbound_plan"),
                outbound_layouts(landing.layouts()),
                settings.data_dir / "outbound",
            )
        except WritebackError as exc:
            raise dg.Failure(str(exc)) from None
        files = pd.DataFrame(
            [(e.source_system, str(e.path or ""), e.records, e.refused, e.why_not or "") for e in exported],
            columns=["source_system", "file", "records", "refused", "no_file_because"],
        )
        context.log.info(
            f"write-back export: {int(files['records'].sum()):,} record(s) in {int((files['file'] != '').sum())} file(s)"
        )
        context.log_event(
            dg.AssetObservation(
                asset_key="crm_outbound_plan",
                metadata={"action": "export", "files": dg.MetadataValue.md(markdown_table(files, limit=50))},
            )
        )
        return
    with open_journal(settings) as journal:
        try:
            if config.action == "rollback":
                if not config.batch_id:
                    raise WritebackError(
                        "rollback needs ops.apply_crm_writeback.config.batch_id (a batch_id of crm_writeback_log)"
                    )
                summary = rollback(config.batch_id, journal, crm_api.base_url, context.log.info)
            else:
                summary = apply_published_plan(table_store, journal, crm_api.base_url, context.log.info)
        except (WritebackError, TimeoutError) as exc:
            raise dg.Failure(str(exc)) from None
        # shown on crm_writeback_plan's page (Events): this act's totals and the log's per-batch totals
        totals = batch_totals(journal.read())
    context.log.info(summary.describe())
    context.log_event(
        dg.AssetObservation(
            asset_key="crm_writeback_plan",
            metadata={
                "action": config.action,
                "plan_or_batch": summary.plan_id or "empty plan",
                "batches_sent": summary.batches_sent,
                "batches_skipped": summary.batches_skipped,
                **{f"records_{status}": n for status, n in summary.records.items()},
                "log_batches": dg.MetadataValue.md(markdown_table(totals.tail(50), limit=50)),
            },
        )
    )


@dg.job(
    description="Write the published crm_writeback_plan to the CRM (or roll a batch back: "
    "ops.apply_crm_writeback.config.action rollback, batch_id; or write the file sources' import files: action export). "
    "Never run by the ingest jobs or sensors."
)
def crm_writeback_job():
    apply_crm_writeback()
