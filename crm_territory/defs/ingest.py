"""Sources into the RAW layer: the CRM API snapshot, the CSV drops, and ``raw_clients``."""


import dagster as dg
import pandas as pd

from crm_territory.defs.metadata import markdown_table, table_metadata
from crm_territory.logic.advisors import advisors_to_frame
from crm_territory.logic.api_snapshot import merge_snapshot, newest_update, records_to_frame
from crm_territory.logic.drops import read_drop
from crm_territory.logic.ingest import assemble_raw_clients
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.resources.landing import LandingZone
from crm_territory.resources.storage import TableStore

OWNERS = ["team:revops-data"]


class CrmApiPullConfig(dg.Config):
    full_refresh: bool = False
    """Pull every record instead of only those updated since the newest one held."""


@dg.asset(
    group_name="raw",
    kinds={"api", "pandas"},
    owners=OWNERS,
    metadata={"layer": "raw"},
)
def crm_api_clients(
    context: dg.AssetExecutionContext, config: CrmApiPullConfig, crm_api: CrmApiResource, table_store: TableStore
) -> dg.Output[pd.DataFrame]:
    """The CRM API's client book as last pulled. Grain: one row per CRM client_id (records without an id kept as sent).

    Incremental: asks ``/clients?updated_since=`` the newest updated_at already held and upserts
    the answer by client_id; ``full_refresh`` pulls everything. A page that keeps failing fails
    the run and leaves the previous snapshot untouched.
    """
    previous = None if config.full_refresh else table_store.read_previous("crm_api_clients")
    since = newest_update(previous)
    context.log.info(f"CRM API pull from {crm_api.base_url}: " + (f"updated_since={since.isoformat()}" if since is not None else "full"))
    pulled_at = pd.Timestamp.now(tz="UTC")
    pages = crm_api.fetch_clients(updated_since=since, log=context.log.info)
    pulled = records_to_frame(pages, pulled_at)
    snapshot = merge_snapshot(previous, pulled)
    context.log.info(f"CRM API: {len(pulled):,} records pulled in {len(pages)} page(s); snapshot holds {len(snapshot):,}")
    return dg.Output(
        snapshot,
        metadata=table_metadata(
            snapshot[["client_id", "client_name", "region", "segment", "status", "updated_at", "source_page"]],
            records_pulled=len(pulled),
            pages=len(pages),
            updated_since=str(since) if since is not None else "full pull",
        ),
    )


@dg.asset(group_name="raw", kinds={"api", "pandas"}, owners=OWNERS, metadata={"layer": "raw"})
def crm_api_advisors(context: dg.AssetExecutionContext, crm_api: CrmApiResource) -> dg.Output[pd.DataFrame]:
    """The CRM API's advisor roster as last pulled. Grain: one row per advisor record sent by ``/advisors``.

    Small and replaced whole on every pull; a failing request fails the run and keeps the previous roster.
    """
    records = crm_api.fetch_advisors(log=context.log.info)
    roster = advisors_to_frame(records, pd.Timestamp.now(tz="UTC"))
    context.log.info(f"CRM API: {len(roster)} advisors ({int(roster['active'].sum())} active)")
    return dg.Output(roster, metadata=table_metadata(roster.drop(columns=["pulled_at"])))


@dg.multi_asset(
    outs={
        "raw_clients": dg.AssetOut(
            group_name="raw",
            kinds={"pandas", "csv"},
            owners=OWNERS,
            metadata={"layer": "raw"},
            description=(
                "Every usable source row, with provenance. Grain: one row per source row "
                "(source_system, source_file or page, source_row); a client updated by several drops has several rows."
            ),
        ),
        "quarantined_clients": dg.AssetOut(
            group_name="raw",
            kinds={"pandas"},
            owners=OWNERS,
            metadata={"layer": "quarantine"},
            description=(
                "Source rows that could not be used (no id, no name, malformed, unknown status), with their source, "
                "original values and the reason. Grain: one row per quarantined source row."
            ),
        ),
        "ingest_manifest": dg.AssetOut(
            group_name="raw",
            kinds={"pandas"},
            owners=OWNERS,
            metadata={"layer": "raw"},
            description=(
                "What was ingested, per run. Grain: one row per source batch (each landing file, the CRM API snapshot), "
                "with rows read, loaded and quarantined, or why a file was rejected."
            ),
        ),
    },
    deps=[crm_api_clients],
)
def raw_clients(context: dg.AssetExecutionContext, landing: LandingZone, table_store: TableStore):
    """Union of the CSV drops and the CRM API snapshot, judged row by row (vectorised) into loaded and quarantined."""
    ingested_at = pd.Timestamp.now(tz="UTC")
    files = landing.list_files()
    context.log.info(f"Landing zone {landing.describe()}: {len(files)} file(s)")
    drops = []
    for landing_file in files:
        read = read_drop(landing_file.name, landing.read_bytes(landing_file.name))
        if read.error:
            context.log.warning(f"Rejected drop {read.error}")
        else:
            context.log.info(f"Read drop {landing_file.name}: {read.rows_read:,} rows ({len(read.malformed):,} malformed)")
        for warning in read.warnings:
            context.log.warning(warning)
        drops.append((landing_file, read))

    api_snapshot = table_store.read_previous("crm_api_clients")
    if api_snapshot is None:
        context.log.warning("No CRM API snapshot yet: materialize crm_api_clients to include the CRM API's clients")

    result = assemble_raw_clients(drops, api_snapshot, ingested_at)
    rows_read = int(result.manifest["rows_read"].sum())
    context.log.info(
        f"raw_clients: {rows_read:,} rows read = {len(result.raw_clients):,} loaded + {len(result.quarantined):,} quarantined; "
        f"{len(result.rejected_batches)} file(s) rejected"
    )
    yield dg.Output(
        result.raw_clients,
        output_name="raw_clients",
        metadata=table_metadata(
            result.raw_clients[["client_id", "client_name", "region", "segment", "source_system", "source_file", "source_row"]],
            rows_read=rows_read,
            batches=dg.MetadataValue.md(markdown_table(result.manifest.drop(columns=["ingested_at"]), limit=50)),
        ),
    )
    reasons = result.quarantined["reason"].value_counts().rename_axis("reason").reset_index(name="rows")
    yield dg.Output(
        result.quarantined,
        output_name="quarantined_clients",
        metadata=table_metadata(
            result.quarantined[["source_system", "source_file", "source_row", "source_page", "source_record_id", "reason"]],
            reasons=dg.MetadataValue.md(markdown_table(reasons, limit=20)),
        ),
    )
    yield dg.Output(
        result.manifest,
        output_name="ingest_manifest",
        metadata=table_metadata(result.manifest, files_rejected=len(result.rejected_batches)),
    )
