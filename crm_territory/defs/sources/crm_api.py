"""The CRM API pull: the client book (incremental) and the advisor roster, every day at 06:00 UTC."""

import dagster as dg
import pandas as pd

from crm_territory.logic.ingest.api_snapshot import merge_snapshot, newest_update, records_to_frame
from crm_territory.logic.placement.advisors import advisors_to_frame
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import DAILY_PULL
from crm_territory.wiring.metadata import table_metadata


class CrmApiPullConfig(dg.Config):
    full_refresh: bool = False
    """Pull every record instead of only those updated since the newest one held."""


@table_asset("crm_api_clients", automation_condition=DAILY_PULL)
def crm_api_clients(
    context: dg.AssetExecutionContext, config: CrmApiPullConfig, crm_api: CrmApiResource, table_store: TableStore
) -> dg.Output[pd.DataFrame]:
    """Incremental: asks ``/clients?updated_since=`` the newest updated_at already held and upserts
    the answer by client_id; ``full_refresh`` pulls everything. A page that keeps failing fails
    the run and leaves the previous snapshot untouched. Every record keeps the CRM's own assignment
    (``crm_owner_email``, ``crm_territory_id``, ``crm_assignment_version``, ``crm_etag``): the
    write-back plan diffs against it, so its etags are those of the latest pull.
    """
    previous = None if config.full_refresh else table_store.read_previous("crm_api_clients")
    since = newest_update(previous)
    context.log.info(
        f"CRM API pull from {crm_api.base_url}: " + (f"updated_since={since.isoformat()}" if since is not None else "full")
    )
    pulled_at = pd.Timestamp.now(tz="UTC")
    pages = crm_api.fetch_clients(updated_since=since, log=context.log.info)
    pulled = records_to_frame(pages, pulled_at)
    snapshot = merge_snapshot(previous, pulled)
    context.log.info(f"CRM API: {len(pulled):,} records pulled in {len(pages)} page(s); snapshot holds {len(snapshot):,}")
    return dg.Output(
        snapshot,
        metadata=table_metadata(
            snapshot,
            preview=snapshot[["client_id", "client_name", "region", "segment", "status", "updated_at", "source_page"]],
            records_pulled=len(pulled),
            pages=len(pages),
            updated_since=str(since) if since is not None else "full pull",
        ),
    )


@table_asset("crm_api_advisors", automation_condition=DAILY_PULL)
def crm_api_advisors(context: dg.AssetExecutionContext, crm_api: CrmApiResource) -> dg.Output[pd.DataFrame]:
    """Small and replaced whole on every pull; a failing request fails the run and keeps the previous roster."""
    records = crm_api.fetch_advisors(log=context.log.info)
    roster = advisors_to_frame(records, pd.Timestamp.now(tz="UTC"))
    context.log.info(f"CRM API: {len(roster)} advisors ({int(roster['active'].sum())} active)")
    return dg.Output(roster, metadata=table_metadata(roster, preview=roster.drop(columns=["pulled_at"])))
