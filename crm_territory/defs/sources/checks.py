"""Checks on what came in: every row accounted for, every landing file accepted."""

import dagster as dg
import pandas as pd

from crm_territory.logic.integrity import unbalanced_batches
from crm_territory.wiring.checks import violations_result


@dg.asset_check(
    asset="raw_clients",
    additional_ins={"quarantined_clients": dg.AssetIn(), "ingest_manifest": dg.AssetIn()},
    blocking=True,
    description="Row conservation: for every batch, rows read = rows in raw_clients + rows in quarantined_clients.",
)
def raw_rows_conserved(
    raw_clients: pd.DataFrame, quarantined_clients: pd.DataFrame, ingest_manifest: pd.DataFrame
) -> dg.AssetCheckResult:
    bad = unbalanced_batches(ingest_manifest, raw_clients, quarantined_clients)
    read = int(ingest_manifest["rows_read"].sum())
    return violations_result(
        bad,
        counted="batches_unbalanced",
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Rows were lost or invented between the source and raw_clients: this is a bug in ingestion; report it with the batch names.",
        rows_read=read,
        rows_loaded=len(raw_clients),
        rows_quarantined=len(quarantined_clients),
    )


@dg.asset_check(
    asset="ingest_manifest",
    blocking=False,
    description="Every landing file was accepted (WARN when a file was rejected: it names the file and the reason).",
)
def landing_files_accepted(ingest_manifest: pd.DataFrame) -> dg.AssetCheckResult:
    rejected = ingest_manifest.loc[ingest_manifest["status"] == "rejected", ["batch", "message"]]
    return violations_result(
        rejected,
        counted="files_rejected",
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="The other drops were loaded. Remove each rejected file from landing/, or replace it with a fixed version (layout, encoding) as its message says; it is re-checked on every run until then.",
        files_accepted=int((ingest_manifest["status"] == "loaded").sum()),
        # still being written: not a problem, read by a later run (their previous version kept meanwhile)
        files_deferred=int((ingest_manifest["status"] == "deferred").sum()),
    )
