"""The CORE layer: the star schema client_dim, territory_dim -> assignments_fact."""


import dagster as dg
import pandas as pd

from crm_territory.defs.ingest import OWNERS
from crm_territory.defs.metadata import markdown_table, table_metadata
from crm_territory.logic.advisors import build_advisor_dim
from crm_territory.logic.assignments import build_assignments_fact, client_counts, current_primary_territories
from crm_territory.logic.clients import build_client_dim
from crm_territory.logic.territories import issue_territories, territory_of
from crm_territory.resources.reference import ReferenceFiles
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
            description="Clients present in the previous client_dim and gone now (their drop was removed, or the CRM stopped sending them). WARN.",
        )
    ],
)
def client_dim(
    context: dg.AssetExecutionContext,
    config: ClientDimConfig,
    raw_clients: pd.DataFrame,
    reference_files: ReferenceFiles,
    table_store: TableStore,
):
    """Client dimension. Grain: one row per client (client_key = ``<source_system>:<client_id>``), its latest version.

    Region and segment are canonicalised through the alias tables in ``reference/`` (unknown
    spellings stay visible in ``data_issues``); the advisor e-mail is lower-cased and validated;
    is_active comes from the source's status (a client keeps its last known status when a drop
    has no status column; a client never given one is active).

    Guard: if more than half of the previous clients would disappear (an empty or unmounted landing
    zone, the wrong CRM_DATA_DIR), the asset fails before publishing; run config
    ``accept_client_loss: true`` publishes anyway.
    """
    reference = reference_files.load()
    dim = build_client_dim(raw_clients, reference)
    context.log.info(f"client_dim: {len(dim):,} clients from {len(raw_clients):,} raw rows")

    previous = table_store.read_previous("client_dim")
    gone = pd.Index([]) if previous is None else pd.Index(previous["client_key"]).difference(pd.Index(dim["client_key"]))
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
        ),
    )
    yield dg.AssetCheckResult(
        check_name="client_dim_keeps_previous_clients",
        passed=len(gone) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "clients_gone": len(gone),
            "clients_before": 0 if previous is None else len(previous),
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
    reference_files: ReferenceFiles,
    table_store: TableStore,
) -> dg.Output[pd.DataFrame]:
    """Territory dimension. Grain: one row per territory ever issued (territory_id), plus ``UNASSIGNED``.

    territory_id = ``{REGION_PREFIX}_{SEGMENT_PREFIX}`` (first three letters, upper-cased). Issued
    ids are read back from the previous territory_dim and never renamed; a colliding newcomer gets
    the next suffix (``NOR_INS_2``).
    """
    reference = reference_files.load()
    previous = table_store.read_previous("territory_dim")
    if previous is None and not config.reissue_territory_ids:
        _refuse_to_forget_issued_ids(context)
    dim = issue_territories(client_dim[["region", "segment"]], previous, reference.owner_roles, pd.Timestamp.now(tz="UTC"))
    issued = len(dim) - (0 if previous is None else len(previous))
    context.log.info(f"territory_dim: {len(dim)} territories ({issued} newly issued)")
    # current clients per territory, by the rule assignments_fact applies (without building the fact twice)
    counts = client_counts(territory_of(client_dim[client_dim["is_active"]], dim), dim)
    return dg.Output(
        dim,
        metadata=table_metadata(
            dim,
            newly_issued=issued,
            clients_per_territory=dg.MetadataValue.md(markdown_table(counts, limit=200)),
        ),
    )


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


def _refuse_to_forget_issued_ids(context: dg.AssetExecutionContext) -> None:
    """The stored registry is gone, but this instance remembers issuing ids: re-issuing could renumber them."""
    last = context.instance.get_latest_materialization_event(context.asset_key)
    row_count = last.asset_materialization.metadata.get("dagster/row_count") if last and last.asset_materialization else None
    if row_count is not None and row_count.value > 0:
        raise dg.Failure(
            description=(
                f"The stored territory_dim (the registry of issued territory ids) is empty or missing, but run "
                f"{last.run_id[:8]} published {row_count.value} territories. Re-issuing now could give existing "
                "territories other ids. Restore the table (on Snowflake: Time Travel, e.g. CREATE TABLE ... CLONE ... "
                "AT(OFFSET => -3600)), or re-run with ops.territory_dim.config.reissue_territory_ids: true to start afresh."
            )
        )


@dg.asset(group_name="core", kinds={"pandas"}, owners=OWNERS, metadata={"layer": "core"})
def assignments_fact(context: dg.AssetExecutionContext, client_dim: pd.DataFrame, territory_dim: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Assignments fact. Grain: one row per (client_key, territory_id, assignment_type).

    Every client has one PRIMARY row in the territory of its (region, segment), with its advisor;
    the row is current while the client is active, so every active client has exactly one current PRIMARY.
    """
    fact = build_assignments_fact(client_dim, territory_dim)
    counts = client_counts(current_primary_territories(fact), territory_dim)
    context.log.info(f"assignments_fact: {len(fact):,} rows, {int(fact['is_current'].sum()):,} current")
    return dg.Output(
        fact,
        metadata=table_metadata(
            fact,
            current_assignments=int(fact["is_current"].sum()),
            clients_per_territory=dg.MetadataValue.md(markdown_table(counts, limit=200)),
        ),
    )
