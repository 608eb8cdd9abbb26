"""The write-back plan: what the CRM must change to hold the current PRIMARY assignments (nothing is sent here)."""

import dagster as dg
import pandas as pd

from crm_territory.logic.writeback.plan import build_plan, crm_state_from_snapshot, plan_summary, records_without_etag
from crm_territory.schemas import CrmWritebackPlan, empty_frame
from crm_territory.storage.table_set_io import TableSetIOManager
from crm_territory.storage.table_store import missing_ok_input
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.metadata import markdown_table, table_metadata


def rules_version_of(assignments_fact: pd.DataFrame) -> str:
    """The rules version(s) of the current PRIMARY placements (one, unless a run is mid-way through a change)."""
    current = assignments_fact[(assignments_fact["assignment_type"] == "PRIMARY") & assignments_fact["is_current"].astype(bool)]
    return ",".join(sorted(current["rules_version"].dropna().astype(str).unique()))


# Read only when there is a CRM snapshot to diff against (a drop-only book does not pay for loading them).
# Only the columns the plan reads (the CSV storage parses no other): at a million clients the whole tables cost GBs.
_PLACEMENT_TABLES = {
    "assignments_fact": [
        "client_key", "territory_id", "primary_advisor_email", "assigned_by", "advisor_reason", "assignment_type",
        "is_current", "rules_version",
    ],
    "client_xref": ["source_system", "source_record_id", "client_key"],
    "advisor_dim": ["advisor_email", "active"],
}  # fmt: skip


@table_asset(
    "crm_writeback_plan",
    automation_condition=FOLLOW_UPSTREAM,
    ins={"crm_api_clients": missing_ok_input()},
    deps=list(_PLACEMENT_TABLES),
    required_resource_keys={"io_manager"},
)
def crm_writeback_plan(context: dg.AssetExecutionContext, crm_api_clients: pd.DataFrame | None) -> dg.Output[pd.DataFrame]:
    """The difference between what the CRM holds as of the latest pull (the ``crm_api_clients`` snapshot: each
    record's owner, territory and etag, kept by every full or incremental pull) and the current PRIMARY rows of
    ``assignments_fact``, mapped to the client's crm_api records by ``client_xref``: one row per record whose owner or
    territory differ. A row whose advisor is not a known, active advisor of ``advisor_dim`` is refused (listed,
    never sent). No HTTP and no token here: a drop run computes it from the stored snapshot.

    No snapshot yet (a drop-only book): the plan is empty and the metadata says so; assignments_fact, client_xref
    and advisor_dim are then not even read (they are read through the run's IO manager, this run's version
    first, only when there is a snapshot to diff against).

    Staleness is handled when the plan is applied (``crm_writeback_job`` or ``cli writeback apply``, an explicit
    act): every record is sent with the plan's etag as If-Match, so a record changed in the CRM since the pull is a
    conflict, read back and reported with both values, never overwritten.
    """
    planned_at = pd.Timestamp.now(tz="UTC")
    if crm_api_clients is None or crm_api_clients.empty:
        why = (
            "no CRM API snapshot yet (crm_api_clients has not been pulled)"
            if crm_api_clients is None
            else "the CRM API snapshot is empty"
        )
        context.log.info(f"crm_writeback_plan: {why}, so the plan is empty (nothing to write back)")
        plan = empty_frame(CrmWritebackPlan)
        return dg.Output(plan, metadata=table_metadata(plan, crm_snapshot=f"none: {why}", records_to_send=0, refused=0))

    io_manager = context.resources.io_manager
    assert isinstance(io_manager, TableSetIOManager), f"crm_writeback_plan needs the table-set IO manager, not {io_manager!r}"
    assignments_fact, client_xref, advisor_dim = (
        io_manager.read_columns_for_run(table, columns) for table, columns in _PLACEMENT_TABLES.items()
    )
    state = crm_state_from_snapshot(crm_api_clients)
    without_etag = records_without_etag(crm_api_clients)
    if without_etag:
        context.log.warning(
            f"crm_writeback_plan: {without_etag:,} CRM record(s) of the snapshot have no etag (pulled before the snapshot kept "
            "the write-back fields) and are left out; a full pull (crm_api_clients config full_refresh: true) reads them"
        )
    plan = build_plan(state, assignments_fact, client_xref, advisor_dim, planned_at)
    summary = plan_summary(plan)
    to_send = int((plan["status"] == "send").sum())
    pulled_at = crm_api_clients["pulled_at"].max()
    context.log.info(
        f"crm_writeback_plan: {len(state):,} CRM records in the snapshot (last pulled {pulled_at}); {to_send:,} to change, "
        f"{len(summary['refused']):,} refused"
        + (f" (plan {plan['plan_id'].iloc[0]})" if not plan.empty else " (nothing to change)")
    )
    return dg.Output(
        plan,
        metadata=table_metadata(
            plan,
            preview=plan[
                ["crm_client_id", "owner_before", "owner_after", "territory_before", "territory_after", "assigned_by", "status"]
            ],
            plan_id=str(plan["plan_id"].iloc[0]) if not plan.empty else "",
            # the rules the placements came from: the write-back sensor applies a plan once these change
            rules_version=rules_version_of(assignments_fact),
            crm_snapshot=f"{len(state):,} records, last pulled {pulled_at}",
            records_without_etag=without_etag,
            records_to_send=to_send,
            refused=len(summary["refused"]),
            per_territory=dg.MetadataValue.md(markdown_table(summary["per_territory"], limit=60)),
            per_advisor=dg.MetadataValue.md(markdown_table(summary["per_advisor"], limit=60)),
            refused_rows=dg.MetadataValue.md(markdown_table(summary["refused"], limit=20)),
            next_step="Review, then apply: the crm_writeback_job, or python -m crm_territory.cli writeback apply "
            "(a record changed in the CRM since the pull is a conflict, reported, never overwritten)",
        ),
    )
