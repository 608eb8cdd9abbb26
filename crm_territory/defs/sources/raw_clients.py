"""The landing drops and the CRM API snapshot into ``raw_clients``, with quarantine and the per-batch manifest."""

import json

import dagster as dg
import pandas as pd

from crm_territory.logic.ingest.drops import refused
from crm_territory.logic.ingest.layouts import Layout
from crm_territory.logic.ingest.mapping import read_landing_file
from crm_territory.logic.ingest.quarantine import new_quarantined_rows
from crm_territory.logic.ingest.raw_clients import assemble_raw_clients
from crm_territory.resources.landing import LandingZone
from crm_territory.storage.table_store import TableStore, missing_ok_input
from crm_territory.wiring.assets import TABLES_POOL, table_out
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.metadata import SAMPLE_ROWS, count_by, markdown_table, table_metadata


@dg.multi_asset(
    outs={
        "raw_clients": table_out("raw_clients", automation_condition=FOLLOW_UPSTREAM),
        "quarantined_clients": table_out(
            "quarantined_clients",
            "Rows with no id, no name, malformed or an unknown status, with their source, original values and the reason.",
            automation_condition=FOLLOW_UPSTREAM,
        ),
        "ingest_manifest": table_out(
            "ingest_manifest",
            "Rows read, loaded and quarantined per batch, or why a file was rejected.",
            automation_condition=FOLLOW_UPSTREAM,
        ),
    },
    ins={"crm_api_clients": missing_ok_input()},
    check_specs=[
        dg.AssetCheckSpec(
            "quarantined_clients_none_new",
            asset="quarantined_clients",
            description="Rows this run quarantined that the previous run had not (WARN, by source and reason, with a sample).",
        )
    ],
    pool=TABLES_POOL,
)
def raw_clients(
    context: dg.AssetExecutionContext, landing: LandingZone, table_store: TableStore, crm_api_clients: pd.DataFrame | None
):
    """Union of the CSV drops and the CRM API snapshot, judged row by row (vectorised) into loaded and quarantined."""
    ingested_at = pd.Timestamp.now(tz="UTC")
    layouts = landing.layouts()
    taken = landing.take(log=context.log.info)
    context.log.info(f"Landing zone {landing.describe()}: {len(taken)} file(s), {len(layouts.valid)} source layout(s)")
    for broken in layouts.broken:
        context.log.warning(broken.message + ("" if broken.files else "; the files it meant to own cannot be told"))
    layout_notes = layouts.unclaiming([item.file.name for item in taken])
    for note in layout_notes:
        context.log.warning(note)
    drops = []
    deferred = []
    deferred_systems = {}
    for item in taken:
        owners = layouts.claims(item.file.name)
        if item.deferred:
            context.log.warning(f"Deferred drop {item.file.name}: {item.deferred}")
            deferred.append((item.file, item.deferred))
            if len(owners) == 1 and isinstance(owners[0], Layout):
                deferred_systems[item.file.name] = owners[0].source_system
            continue
        if item.file.refusal or item.data is None:
            read = refused(item.file.name, item.file.refusal or "not read")
        else:
            read = read_landing_file(item.file.name, item.data, layouts)
        if read.error:
            context.log.warning(f"Rejected drop {read.error}")
        else:
            assert read.malformed is not None  # a drop read without an error has its rows and malformed rows
            context.log.info(f"Read drop {item.file.name}: {read.rows_read:,} rows ({len(read.malformed):,} malformed)")
        for warning in read.warnings:
            context.log.warning(warning)
        drops.append((item.file, read))

    if crm_api_clients is None:
        context.log.warning("No CRM API snapshot yet: materialize crm_api_clients to include the CRM API's clients")

    previous_quarantined = table_store.read_previous("quarantined_clients")
    result = assemble_raw_clients(
        drops,
        crm_api_clients,
        ingested_at,
        deferred=deferred,
        # a deferred file's previous version stays in force: read only when a file is deferred
        previous_raw=table_store.read_previous("raw_clients") if deferred else None,
        previous_quarantined=previous_quarantined,
        deferred_source_systems=deferred_systems,
    )
    rows_read = int(result.manifest["rows_read"].sum())
    context.log.info(
        f"raw_clients: {rows_read:,} rows read = {len(result.raw_clients):,} loaded + {len(result.quarantined):,} quarantined; "
        f"{len(result.rejected_batches)} file(s) rejected, {len(deferred)} deferred (still being written)"
    )
    yield dg.Output(
        result.raw_clients,
        output_name="raw_clients",
        metadata=table_metadata(
            result.raw_clients,
            preview=result.raw_clients[
                ["client_id", "client_name", "region", "segment", "source_system", "source_file", "source_row"]
            ],
            rows_read=rows_read,
            batches=dg.MetadataValue.md(markdown_table(result.manifest.drop(columns=["ingested_at"]), limit=50)),
            source_layouts=dg.MetadataValue.md(
                markdown_table(
                    pd.DataFrame(
                        [{"layout": x.name, "source_system": x.source_system, "problem": None} for x in layouts.valid]
                        + [{"layout": x.name, "source_system": None, "problem": x.message} for x in layouts.broken]
                        + [{"layout": n.split(":")[0], "source_system": None, "problem": n} for n in layout_notes],
                        columns=["layout", "source_system", "problem"],
                    ),
                    limit=50,
                )
            ),
        ),
    )
    quarantined = result.quarantined
    new = new_quarantined_rows(quarantined, previous_quarantined)
    by_reason = count_by(quarantined, ["source_system", "source_file", "reason"])
    yield dg.Output(
        quarantined,
        output_name="quarantined_clients",
        metadata=table_metadata(
            quarantined,
            preview=quarantined[["source_system", "source_file", "source_row", "source_page", "source_record_id", "reason"]],
            rows_new_this_run=len(new),
            by_source_and_reason=dg.MetadataValue.md(markdown_table(by_reason, limit=50)),
        ),
    )
    yield dg.Output(
        result.manifest,
        output_name="ingest_manifest",
        metadata=table_metadata(result.manifest, files_rejected=len(result.rejected_batches), files_deferred=len(deferred)),
    )
    yield dg.AssetCheckResult(
        check_name="quarantined_clients_none_new",
        asset_key="quarantined_clients",
        passed=new.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_quarantined_this_run": len(new),
            "rows_in_quarantine": len(quarantined),
            **(
                {
                    "new_by_source_and_reason": dg.MetadataValue.md(
                        markdown_table(count_by(new, ["source_system", "source_file", "reason"]), limit=50)
                    ),
                    # the rows, with the name they were sent under: no client_key (they never became clients)
                    "sample": dg.MetadataValue.md(
                        markdown_table(_with_sent_name(new.head(SAMPLE_ROWS)), limit=SAMPLE_ROWS)
                        + (f"\n\n_{SAMPLE_ROWS} of {len(new):,} rows_" if len(new) > SAMPLE_ROWS else f"\n\n_{len(new):,} rows_")
                    ),
                    "next_step": "Fix these rows in the source CRM or send a corrected drop; the rest of the batch was loaded.",
                }
                if len(new)
                else {}
            ),
        },
    )


def _sent_name(values: object) -> str | None:
    """The client name a quarantined row was sent with, when its source calls the column client_name."""
    try:
        sent = json.loads(values) if isinstance(values, str) else None
    except ValueError:
        return None
    name = sent.get("client_name") if isinstance(sent, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def _with_sent_name(rows: pd.DataFrame) -> pd.DataFrame:
    """A quarantine check's sample: where each row came from, the name it was sent under, and why it was refused.

    Called on the sample only (at most SAMPLE_ROWS rows): parsing the sent values of every row would be
    work for nothing. A layout export names its columns its own way (``Account Name``): no name shown.
    """
    named = rows.assign(client_name=rows["original_values"].map(_sent_name))
    return named[["source_system", "source_file", "source_row", "source_record_id", "client_name", "reason"]]
