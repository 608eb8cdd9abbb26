"""Relationship checks on assignments_fact: every key exists, every active client has one current PRIMARY."""

import dagster as dg
import pandas as pd

from crm_territory.logic.integrity import active_clients_without_one_current_primary, orphan_fact_rows
from crm_territory.wiring.checks import violations_result


@dg.asset_check(
    asset="assignments_fact",
    additional_ins={"client_dim": dg.AssetIn(), "territory_dim": dg.AssetIn()},
    blocking=True,
    description="Relationships: every fact row's client_key is in client_dim and its territory_id in territory_dim.",
)
def assignments_fact_keys_exist(
    assignments_fact: pd.DataFrame, client_dim: pd.DataFrame, territory_dim: pd.DataFrame
) -> dg.AssetCheckResult:
    return violations_result(
        orphan_fact_rows(assignments_fact, client_dim, territory_dim),
        counted="fact_rows_without_their_keys",
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
        counted="active_clients_without_one_current_primary",
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Re-materialize assignments_fact from the current client_dim; if it persists, it is a bug in crm_territory/logic/assignments.py.",
    )
