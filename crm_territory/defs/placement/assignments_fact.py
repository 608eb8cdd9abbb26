"""The assignments fact: which territory and advisor own every client, and why."""

import dagster as dg
import pandas as pd

from crm_territory.logic.placement.assignments import build_assignments_fact, client_counts, current_primary_territories
from crm_territory.logic.placement.capacity import advisor_warnings, clients_of_advisors
from crm_territory.logic.rules.engine import evaluate
from crm_territory.resources.rules_files import RulesFiles
from crm_territory.wiring import charts
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import ASSIGNMENTS_FRESHNESS, FOLLOW_UPSTREAM
from crm_territory.wiring.checks import client_sample
from crm_territory.wiring.guards import rules_in_force
from crm_territory.wiring.metadata import markdown_table, table_metadata


@table_asset(
    "assignments_fact",
    automation_condition=FOLLOW_UPSTREAM,
    freshness_policy=ASSIGNMENTS_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(
            "assignments_fact_advisor_capacity",
            asset="assignments_fact",
            description="No advisor is over capacity unless its territory is as a whole (WARN, with the numbers, when one is).",
        )
    ],
)
def assignments_fact(
    context: dg.AssetExecutionContext,
    client_dim: pd.DataFrame,
    territory_dim: pd.DataFrame,
    advisor_dim: pd.DataFrame,
    territory_rules: pd.DataFrame,
    rules_files: RulesFiles,
):
    """Every client has one PRIMARY row where the rules place it, with its advisor (pinned by an
    override, or balanced within capacity, keeping current advisors whenever allowed), and
    SECONDARY rows in its parent organisation's territory and in overlay territories. Each row
    says why: ``assigned_by`` (rule id, ``override:<client_key>``, ``parent_org``, overlay id or
    ``fallback``), ``segment_rule``, ``advisor_reason`` and ``rules_version``. Rows are current while
    the client is active, so every active client has exactly one current PRIMARY.
    """
    rules = rules_in_force(rules_files, territory_rules)
    placement = evaluate(client_dim, rules)
    result = build_assignments_fact(client_dim, territory_dim, placement, advisor_dim)
    fact = result.fact
    counts = client_counts(current_primary_territories(fact), territory_dim)
    primary = fact[fact["assignment_type"] == "PRIMARY"]
    context.log.info(
        f"assignments_fact: {len(fact):,} rows ({len(fact) - len(primary):,} SECONDARY), "
        f"{int(fact['is_current'].sum()):,} current, rules {rules.version}"
    )
    capacity = result.capacity
    metadata = {
        "current_assignments": int(fact["is_current"].sum()),
        "secondary_rows": len(fact) - len(primary),
        "rules_version": rules.version,
        # the chart first: on the asset page it answers "how many clients does each territory hold" at a glance
        "clients_per_territory_chart": dg.MetadataValue.md(
            charts.markdown_image(
                "clients per territory", charts.territory_chart(charts.clients_per_territory(fact, territory_dim["territory_id"]))
            )
        ),
        "clients_per_territory": dg.MetadataValue.md(markdown_table(counts, limit=200)),
        "placed_by": dg.MetadataValue.md(
            markdown_table(primary["assigned_by"].value_counts().rename_axis("assigned_by").reset_index(name="clients"), limit=50)
        ),
        "advisor_reasons": dg.MetadataValue.md(
            markdown_table(
                primary["advisor_reason"].value_counts().rename_axis("advisor_reason").reset_index(name="clients"), limit=20
            )
        ),
    }
    if capacity is not None:
        loads = capacity.loads.sort_values("utilisation", ascending=False)[
            ["advisor_email", "capacity", "load", "utilisation", "active"]
        ]
        metadata.update(
            {
                "advisor_utilisation_chart": dg.MetadataValue.md(
                    charts.markdown_image(
                        "advisor load vs capacity", charts.utilisation_chart(charts.advisor_utilisation(capacity.loads))
                    )
                ),
                "advisor_loads": dg.MetadataValue.md(markdown_table(loads, limit=60)),
                "max_utilisation": float(capacity.achieved),
                "lp_bound": float(capacity.lp_bound),
                "gap_to_optimum": float(capacity.gap),
            }
        )
    yield dg.Output(fact, metadata=table_metadata(fact, **metadata))

    warnings = advisor_warnings(capacity) if capacity is not None else pd.DataFrame()
    over = capacity.over_capacity if capacity is not None else pd.DataFrame()
    # which clients: those the over-capacity advisors hold now (the sample spread over the advisors)
    affected = clients_of_advisors(fact, warnings.get("advisor_email", pd.Series(dtype=object)), client_dim)
    yield dg.AssetCheckResult(
        check_name="assignments_fact_advisor_capacity",
        passed=warnings.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "advisors_over_capacity": len(warnings),
            "territories_over_capacity": len(over),
            **(
                {
                    "advisors": dg.MetadataValue.md(
                        markdown_table(warnings.drop(columns=["over_capacity_territories"]), limit=50)
                    ),
                    "territories": dg.MetadataValue.md(markdown_table(over, limit=50)),
                    "clients_of_over_capacity_advisors": len(affected),
                    "affected_clients": client_sample(affected, spread_by="primary_advisor_email"),
                    "next_step": "Add capacity or advisors to these territories in the CRM, or move clients with a rules change (preview it first).",
                }
                if not warnings.empty
                else {}
            ),
            **({"note": "no advisor roster yet: advisors as the sources name them"} if capacity is None else {}),
        },
    )
