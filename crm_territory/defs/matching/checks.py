"""Checks on the golden client_dim: conservation against client_xref, unknown spellings, advisor e-mails."""

import dagster as dg
import pandas as pd

from crm_territory.logic.integrity import client_dim_mismatches
from crm_territory.wiring.checks import violations_result


@dg.asset_check(
    asset="client_dim",
    additional_ins={"client_xref": dg.AssetIn()},
    blocking=True,
    description="Conservation: every client_key of client_xref is exactly one row of client_dim, with as many source records as client_xref lists, and no row comes from nowhere.",
)
def client_dim_conserves_clients(client_dim: pd.DataFrame, client_xref: pd.DataFrame) -> dg.AssetCheckResult:
    return violations_result(
        client_dim_mismatches(client_xref, client_dim),
        counted="client_keys_mismatched",
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
        counted="spellings_to_add",
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="Add the spellings to data/reference/region_aliases.csv or segment_aliases.csv (or fix the source), then re-materialize; these clients sit in UNASSIGNED until then.",
        # data_issues names the field at fault and the spelling as sent ("unknown region 'Atlantis'")
        affected_clients=unknown[["client_key", "client_name", "source_system", "data_issues"]],
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
        counted="kinds_of_email_problem",
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="Correct the advisor e-mail in the source CRM or the next drop.",
        # the record whose e-mail survived is the one to correct: its source system and id say where
        affected_clients=missing[["client_key", "client_name", "source_system", "source_record_id"]].assign(issue=issues),
        active_clients_without_advisor=len(missing),
    )
