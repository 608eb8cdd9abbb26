"""The CORE layer: the star schema client_dim, territory_dim -> assignments_fact."""


import dagster as dg
import pandas as pd

from crm_territory.defs.guards import refuse_to_forget
from crm_territory.defs.ingest import OWNERS
from crm_territory.defs.metadata import markdown_table, table_metadata
from crm_territory.logic.advisors import build_advisor_dim
from crm_territory.logic.assignments import build_assignments_fact, client_counts, current_primary_territories
from crm_territory.logic.capacity import advisor_warnings
from crm_territory.logic.clients import build_client_dim
from crm_territory.logic.rule_engine import evaluate
from crm_territory.logic.rules import Rules
from crm_territory.logic.star import build_territories
from crm_territory.logic.territories import territory_ids
from crm_territory.resources.reference import ReferenceFiles
from crm_territory.resources.rules import RulesFiles
from crm_territory.resources.storage import TableStore


class ClientDimConfig(dg.Config):
    accept_client_loss: bool = False
    """Publish even if more than half of the previous clients are gone (a deliberate clean-up of the landing zone)."""


LOSS_LIMIT = 0.5  # share of the previous clients whose disappearance stops client_dim


@dg.asset(
    group_name="core",
    kinds={"pandas"},
    owners=OWNERS,
    metadata={"layer": "core"},
    check_specs=[
        dg.AssetCheckSpec(
            "client_dim_keeps_previous_clients",
            asset="client_dim",
            description="Clients present in the previous client_dim and gone now (their drop was removed, or the CRM stopped sending them); keys retired by a merge are not gone. WARN.",
        )
    ],
)
def client_dim(
    context: dg.AssetExecutionContext,
    config: ClientDimConfig,
    raw_clients: pd.DataFrame,
    client_xref: pd.DataFrame,
    client_key_retirements: pd.DataFrame,
    reference_files: ReferenceFiles,
    table_store: TableStore,
):
    """Client dimension. Grain: one row per client (client_key): a real organisation, however many source records it has.

    client_xref says which source records are one client; each field of the row comes from the
    record the survivorship rules pick (a usable value first, then the CRM over drops, then the most
    recent; see crm_territory/logic/survivorship.py). ``source_record_count`` says how many records
    were merged. Region and segment are canonicalised through the alias tables in ``reference/``
    (unknown spellings stay visible in ``data_issues``); the advisor e-mail is lower-cased and
    validated; is_active comes from the source's status (a client never given one is active).

    Guard: if more than half of the previous clients would disappear (an empty or unmounted landing
    zone, the wrong CRM_DATA_DIR), the asset fails before publishing; run config
    ``accept_client_loss: true`` publishes anyway. Keys retired by a merge do not count as lost.
    """
    dim = build_client_dim(raw_clients, reference_files.load(), client_xref)
    merged = int((dim["source_record_count"] > 1).sum())
    context.log.info(f"client_dim: {len(dim):,} clients from {len(client_xref):,} source records ({merged:,} clients merge several)")

    previous = table_store.read_previous("client_dim")
    gone = pd.Index([]) if previous is None else pd.Index(previous["client_key"]).difference(pd.Index(dim["client_key"]))
    retired = gone.intersection(pd.Index(client_key_retirements["retired_client_key"]))
    gone = gone.difference(retired)
    if previous is not None and len(previous) and len(gone) > LOSS_LIMIT * len(previous) and not config.accept_client_loss:
        raise dg.Failure(
            description=(
                f"client_dim would lose {len(gone):,} of its {len(previous):,} clients ({len(gone) / len(previous):.0%}). "
                "Is the landing zone empty or unmounted, or CRM_DATA_DIR wrong? Nothing was published. "
                "If the loss is intended, re-run with run config ops.client_dim.config.accept_client_loss: true."
            ),
            metadata={"clients_before": len(previous), "clients_now": len(dim), "sample_gone": ", ".join(gone[:20])},
        )

    unknown = int((dim["region"].isna() | dim["segment"].isna()).sum())
    yield dg.Output(
        dim,
        metadata=table_metadata(
            dim[["client_key", "client_name", "region", "segment", "is_active", "data_issues"]],
            active_clients=int(dim["is_active"].sum()),
            clients_with_unknown_region_or_segment=unknown,
            clients_without_valid_advisor_email=int(dim["primary_advisor_email"].isna().sum()),
            clients_gone_since_previous=len(gone),
            clients_merged_since_previous=len(retired),
            clients_with_several_source_records=merged,
        ),
    )
    yield dg.AssetCheckResult(
        check_name="client_dim_keeps_previous_clients",
        passed=len(gone) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "clients_gone": len(gone),
            "clients_before": 0 if previous is None else len(previous),
            "keys_retired_by_merges": len(retired),
            **({"sample_gone": ", ".join(gone[:20]), "next_step": "If a drop was removed by mistake, put it back in landing/ and re-run."} if len(gone) else {}),
        },
    )


class TerritoryDimConfig(dg.Config):
    reissue_territory_ids: bool = False
    """Start a new territory registry although an earlier run issued ids (they may be renumbered)."""


@dg.asset(group_name="core", kinds={"pandas"}, owners=OWNERS, metadata={"layer": "core"})
def territory_dim(
    context: dg.AssetExecutionContext,
    config: TerritoryDimConfig,
    client_dim: pd.DataFrame,
    territory_rules: pd.DataFrame,
    reference_files: ReferenceFiles,
    rules_files: RulesFiles,
    table_store: TableStore,
) -> dg.Output[pd.DataFrame]:
    """Territory dimension. Grain: one row per territory ever issued (territory_id), plus ``UNASSIGNED``.

    The territories are the (region, segment) targets the rules give the clients, plus the rules'
    overlay territories. territory_id = ``{REGION_PREFIX}_{SEGMENT_PREFIX}`` (first three letters,
    upper-cased); an overlay's id is its code. Issued ids are read back from the previous
    territory_dim and never renamed; a colliding newcomer gets the next suffix (``NOR_INS_2``).
    """
    reference = reference_files.load()
    rules = _rules_in_force(rules_files, territory_rules)
    previous = table_store.read_previous("territory_dim")
    if previous is None and not config.reissue_territory_ids:
        refuse_to_forget(context, "the registry of issued territory ids; re-issuing could renumber them", "ops.territory_dim.config.reissue_territory_ids: true")
    placement = evaluate(client_dim, rules)
    dim = build_territories(placement, rules, reference, previous, pd.Timestamp.now(tz="UTC"))
    issued = len(dim) - (0 if previous is None else len(previous))
    context.log.info(f"territory_dim: {len(dim)} territories ({issued} newly issued), rules {rules.version}")
    # current clients per territory, by the rules assignments_fact applies
    active = client_dim["is_active"].to_numpy()
    counts = client_counts(
        territory_ids(placement.clients["target_region"][active], placement.clients["target_segment"][active], dim), dim
    )
    return dg.Output(
        dim,
        metadata=table_metadata(
            dim,
            newly_issued=issued,
            rules_version=rules.version,
            clients_per_territory=dg.MetadataValue.md(markdown_table(counts, limit=200)),
        ),
    )


def _rules_in_force(rules_files: RulesFiles, territory_rules: pd.DataFrame) -> Rules:
    """The active rules, and the same version territory_rules validated earlier in this run."""
    rules = rules_files.load_active()
    validated = set(territory_rules["rules_version"]) or {rules.version}
    if validated != {rules.version}:
        raise dg.Failure(
            f"The rules file changed during the run (validated {', '.join(sorted(validated))}, now {rules.version}). "
            "Re-run: territory_rules validates the file first."
        )
    return rules


@dg.asset(group_name="core", kinds={"pandas"}, owners=OWNERS, metadata={"layer": "core"}, deps=["crm_api_advisors"])
def advisor_dim(
    context: dg.AssetExecutionContext, territory_dim: pd.DataFrame, reference_files: ReferenceFiles, table_store: TableStore
) -> dg.Output[pd.DataFrame]:
    """Advisor dimension. Grain: one row per advisor e-mail: territories served (ids), capacity, active.

    Built from the last CRM API roster (``crm_api_advisors``), its regions and segments translated
    to territory ids through territory_dim. Without a roster yet (no API pull), the table is empty
    and assignments keep the advisors the sources name.
    """
    roster = table_store.read_previous("crm_api_advisors")
    if roster is None:
        context.log.warning("No advisor roster yet: materialize crm_api_advisors (the CRM API pull) to balance advisor capacity")
    dim = build_advisor_dim(roster, territory_dim, reference_files.load())
    dropped = 0 if roster is None else len(roster) - len(dim)
    if dropped:
        context.log.warning(f"{dropped} roster record(s) without a valid e-mail or duplicated were left out")
    return dg.Output(
        dim,
        metadata=table_metadata(
            dim,
            active_advisors=int(dim["active"].sum()),
            total_capacity=int(dim.loc[dim["active"], "capacity"].sum()),
            roster_records_left_out=dropped,
        ),
    )


@dg.asset(
    group_name="core",
    kinds={"pandas"},
    owners=OWNERS,
    metadata={"layer": "core"},
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
    """Assignments fact. Grain: one row per (client_key, territory_id, assignment_type).

    Every client has one PRIMARY row where the rules place it, with its advisor (pinned by an
    override, or balanced within capacity, keeping current advisors whenever allowed), and
    SECONDARY rows in its parent organisation's territory and in overlay territories. Each row
    says why: ``assigned_by`` (rule id, ``override:<client_key>``, ``parent_org``, overlay id or
    ``fallback``), ``segment_rule``, ``advisor_reason`` and ``rules_version``. Rows are current while
    the client is active, so every active client has exactly one current PRIMARY.
    """
    rules = _rules_in_force(rules_files, territory_rules)
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
        "clients_per_territory": dg.MetadataValue.md(markdown_table(counts, limit=200)),
        "placed_by": dg.MetadataValue.md(markdown_table(primary["assigned_by"].value_counts().rename_axis("assigned_by").reset_index(name="clients"), limit=50)),
        "advisor_reasons": dg.MetadataValue.md(markdown_table(primary["advisor_reason"].value_counts().rename_axis("advisor_reason").reset_index(name="clients"), limit=20)),
    }
    if capacity is not None:
        loads = capacity.loads.sort_values("utilisation", ascending=False)[["advisor_email", "capacity", "load", "utilisation", "active"]]
        metadata.update(
            {
                "advisor_loads": dg.MetadataValue.md(markdown_table(loads, limit=60)),
                "max_utilisation": float(capacity.achieved),
                "lp_bound": float(capacity.lp_bound),
                "gap_to_optimum": float(capacity.gap),
            }
        )
    yield dg.Output(fact, metadata=table_metadata(fact, **metadata))

    warnings = advisor_warnings(capacity) if capacity is not None else pd.DataFrame()
    over = capacity.over_capacity if capacity is not None else pd.DataFrame()
    yield dg.AssetCheckResult(
        check_name="assignments_fact_advisor_capacity",
        passed=warnings.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "advisors_over_capacity": len(warnings),
            "territories_over_capacity": len(over),
            **(
                {
                    "advisors": dg.MetadataValue.md(markdown_table(warnings.drop(columns=["over_capacity_territories"]), limit=50)),
                    "territories": dg.MetadataValue.md(markdown_table(over, limit=50)),
                    "next_step": "Add capacity or advisors to these territories in the CRM, or move clients with a rules change (preview it first).",
                }
                if not warnings.empty
                else {}
            ),
            **({"note": "no advisor roster yet: advisors as the sources name them"} if capacity is None else {}),
        },
    )
