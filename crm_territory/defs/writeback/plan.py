"""The write-back plan: what the CRM must change to hold the current PRIMARY assignments (nothing is sent here)."""

import os

import dagster as dg
import pandas as pd

from crm_territory.logic.writeback.plan import build_plan, crm_state_from_records, plan_summary
from crm_territory.resources.crm_api import CrmApiError, CrmApiResource
from crm_territory.schemas import CrmWritebackPlan, empty_frame
from crm_territory.settings import load_settings
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.metadata import markdown_table, table_metadata


@table_asset("crm_writeback_plan", automation_condition=FOLLOW_UPSTREAM)
def crm_writeback_plan(
    context: dg.AssetExecutionContext,
    assignments_fact: pd.DataFrame,
    client_xref: pd.DataFrame,
    advisor_dim: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Reads the CRM's owner_email, territory_id and etag of every record from the CRM API in this run (a full
    read of ``/clients``: the etags must be the CRM's latest, and the incremental snapshot keeps only the fields
    the engine places on), maps each client's PRIMARY row to its crm_api records (client_xref) and keeps the
    records whose owner or territory differ. A row whose advisor is not a known, active advisor is refused
    (listed, never sent). Applying it is an explicit act: ``crm_writeback_job`` or ``cli writeback apply``.
    If the CRM cannot be read, the plan is empty (nothing would be sent) and the metadata says why.

    The CRM is read with CRM_API_URL and CRM_API_TOKEN from the environment (as the ``crm_api`` resource is),
    not through that resource: a drop run must not need the token, and without it this plan is empty, saying so.
    """
    planned_at = pd.Timestamp.now(tz="UTC")
    token = os.environ.get("CRM_API_TOKEN", "")
    problem = "CRM_API_TOKEN is not set" if not token else None
    pages = []
    if token:
        try:
            pages = CrmApiResource(base_url=load_settings().api_url, token=token).fetch_clients(log=context.log.info)
        except CrmApiError as exc:
            problem = str(exc)
    if problem is not None:
        context.log.warning(f"crm_writeback_plan: the CRM could not be read ({problem}), so the plan is empty this run")
        plan = empty_frame(CrmWritebackPlan)
        return dg.Output(plan, metadata=table_metadata(plan, crm_read=f"not read: {problem}", records_to_send=0, refused=0))
    state = crm_state_from_records([record for _, records in pages for record in records])
    plan = build_plan(state, assignments_fact, client_xref, advisor_dim, planned_at)
    summary = plan_summary(plan)
    to_send = int((plan["status"] == "send").sum())
    context.log.info(
        f"crm_writeback_plan: {len(state):,} CRM records read; {to_send:,} to change, {len(summary['refused']):,} refused"
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
            crm_read=f"{len(state):,} records",
            records_to_send=to_send,
            refused=len(summary["refused"]),
            per_territory=dg.MetadataValue.md(markdown_table(summary["per_territory"], limit=60)),
            per_advisor=dg.MetadataValue.md(markdown_table(summary["per_advisor"], limit=60)),
            refused_rows=dg.MetadataValue.md(markdown_table(summary["refused"], limit=20)),
            next_step="Review, then apply: the crm_writeback_job, or python -m crm_territory.cli writeback apply",
        ),
    )
