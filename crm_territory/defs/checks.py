"""Asset checks: one factory turns each Pandera model into a blocking check; integrity checks sit beside it.

A failing blocking check (severity ERROR) stops the downstream assets of the run, and its
metadata says how many rows failed, a sample of them, and what to do next.
"""


import dagster as dg
import pandas as pd
import pandera.errors
import pandera.pandas as pa

from crm_territory.defs.metadata import SAMPLE_ROWS, markdown_table, violations_result
from crm_territory.logic.integrity import (
    active_clients_without_one_current_primary,
    client_dim_mismatches,
    orphan_fact_rows,
    unbalanced_batches,
)
from crm_territory.schemas import TABLES



def schema_check(table: str, model: type[pa.DataFrameModel]) -> dg.AssetChecksDefinition:
    """A blocking check validating ``table`` against ``model`` lazily (every failure, not the first)."""

    @dg.asset_check(
        asset=table,
        name=f"{table}_matches_schema",
        blocking=True,
        description=f"Every row of {table} satisfies the {model.__name__} Pandera model (types, nulls, uniqueness, allowed values, patterns).",
    )
    def _check(context: dg.AssetCheckExecutionContext, asset_value: pd.DataFrame) -> dg.AssetCheckResult:
        try:
            model.validate(asset_value, lazy=True)
        except pandera.errors.SchemaErrors as errors:
            cases = errors.failure_cases.copy()
            key = asset_value.columns[0]  # each model's first column names the row (client_key, territory_id, ...)
            rows = pd.to_numeric(cases["index"], errors="coerce")
            known = rows.notna() & rows.isin(asset_value.index)
            cases[key] = None
            cases.loc[known, key] = asset_value.loc[rows[known].astype(int), key].to_numpy()
            summary = cases.groupby(["column", "check"], dropna=False).size().rename("failures").reset_index()
            context.log.error(f"{table}: {len(cases):,} schema failure(s); see the check's metadata")
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failures": len(cases),
                    "failures_by_check": dg.MetadataValue.md(markdown_table(summary, limit=50)),
                    "failure_cases_sample": dg.MetadataValue.md(markdown_table(cases[[key, "column", "check", "failure_case"]], limit=SAMPLE_ROWS)),
                    "next_step": f"Fix the rule that produced these rows, or the model {model.__name__} in crm_territory/schemas.py if it is wrong; then re-materialize {table}.",
                },
            )
        return dg.AssetCheckResult(passed=True, metadata={"rows_validated": len(asset_value), "failures": 0})

    # the asset is loaded through the IO manager under the parameter name asset_value
    return _check


schema_checks = [schema_check(name, spec.model) for name, spec in TABLES.items()]


@dg.asset_check(
    asset="raw_clients",
    additional_ins={"quarantined_clients": dg.AssetIn(), "ingest_manifest": dg.AssetIn()},
    blocking=True,
    description="Row conservation: for every batch, rows read = rows in raw_clients + rows in quarantined_clients.",
)
def raw_rows_conserved(raw_clients: pd.DataFrame, quarantined_clients: pd.DataFrame, ingest_manifest: pd.DataFrame) -> dg.AssetCheckResult:
    bad = unbalanced_batches(ingest_manifest, raw_clients, quarantined_clients)
    read = int(ingest_manifest["rows_read"].sum())
    return violations_result(
        bad,
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
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="The other drops were loaded. Remove each rejected file from landing/, or replace it with a fixed version (layout, encoding) as its message says; it is re-checked on every run until then.",
    )


@dg.asset_check(
    asset="client_dim",
    additional_ins={"client_xref": dg.AssetIn()},
    blocking=True,
    description="Conservation: every client_key of client_xref is exactly one row of client_dim, with as many source records as client_xref lists, and no row comes from nowhere.",
)
def client_dim_conserves_clients(client_dim: pd.DataFrame, client_xref: pd.DataFrame) -> dg.AssetCheckResult:
    return violations_result(
        client_dim_mismatches(client_xref, client_dim),
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="client_dim lost, duplicated or invented clients: a bug in crm_territory/logic/clients.py or survivorship.py.",
    )


@dg.asset_check(
    asset="client_dim",
    blocking=False,
    description="Clients whose region or segment is unknown (kept, assigned to UNASSIGNED). WARN, listing the spellings to add.",
)
def client_dim_unknown_region_or_segment(client_dim: pd.DataFrame) -> dg.AssetCheckResult:
    unknown = client_dim[client_dim["region"].isna() | client_dim["segment"].isna()]
    # one row per spelling to add (or "no region"/"no segment"), however the issues combine per client
    spellings = unknown["data_issues"].str.extractall(r"(?P<issue>unknown (?:region|segment) '[^']*'|no region|no segment)")
    by_spelling = spellings["issue"].value_counts().rename_axis("issue").reset_index(name="clients")
    return violations_result(
        by_spelling,
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="Add the spellings to data/reference/region_aliases.csv or segment_aliases.csv (or fix the source), then re-materialize; these clients sit in UNASSIGNED until then.",
        clients_unassigned=len(unknown),
    )


@dg.asset_check(
    asset="client_dim",
    blocking=False,
    description="Active clients without a valid advisor e-mail (missing or malformed). WARN.",
)
def client_dim_advisor_email_present(client_dim: pd.DataFrame) -> dg.AssetCheckResult:
    missing = client_dim[client_dim["is_active"] & client_dim["primary_advisor_email"].isna()]
    issues = missing["data_issues"].str.extract(r"(?P<issue>invalid advisor e-mail|no advisor e-mail)")["issue"]
    by_issue = issues.value_counts().rename_axis("issue").reset_index(name="clients")
    return violations_result(
        by_issue,
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="Correct the advisor e-mail in the source CRM or the next drop.",
        active_clients_without_advisor=len(missing),
    )


@dg.asset_check(
    asset="assignments_fact",
    additional_ins={"client_dim": dg.AssetIn(), "territory_dim": dg.AssetIn()},
    blocking=True,
    description="Relationships: every fact row's client_key is in client_dim and its territory_id in territory_dim.",
)
def assignments_fact_keys_exist(assignments_fact: pd.DataFrame, client_dim: pd.DataFrame, territory_dim: pd.DataFrame) -> dg.AssetCheckResult:
    return violations_result(
        orphan_fact_rows(assignments_fact, client_dim, territory_dim),
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Re-materialize client_dim, territory_dim and assignments_fact together; if it persists, it is a bug in the assignment logic.",
    )


@dg.asset_check(
    asset="assignments_fact",
    additional_ins={"client_dim": dg.AssetIn()},
    blocking=True,
    description="Every active client has exactly one current PRIMARY assignment.",
)
def one_current_primary_per_active_client(assignments_fact: pd.DataFrame, client_dim: pd.DataFrame) -> dg.AssetCheckResult:
    return violations_result(
        active_clients_without_one_current_primary(assignments_fact, client_dim),
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Re-materialize assignments_fact from the current client_dim; if it persists, it is a bug in crm_territory/logic/assignments.py.",
    )


integrity_checks = [
    raw_rows_conserved,
    landing_files_accepted,
    client_dim_conserves_clients,
    client_dim_unknown_region_or_segment,
    client_dim_advisor_email_present,
    assignments_fact_keys_exist,
    one_current_primary_per_active_client,
]
