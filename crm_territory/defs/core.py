"""The CORE layer: the star schema client_dim, territory_dim -> assignments_fact."""


import dagster as dg
import pandas as pd

from crm_territory.defs.ingest import OWNERS
from crm_territory.defs.metadata import markdown_table, table_metadata
from crm_territory.logic.assignments import build_assignments_fact, client_counts
from crm_territory.logic.clients import build_client_dim
from crm_territory.logic.territories import issue_territories, territory_of
from crm_territory.resources.reference import ReferenceFiles
from crm_territory.resources.storage import TableStore


@dg.asset(group_name="core", kinds={"pandas", "csv"}, owners=OWNERS, metadata={"layer": "core"})
def client_dim(context: dg.AssetExecutionContext, raw_clients: pd.DataFrame, reference_files: ReferenceFiles) -> dg.Output[pd.DataFrame]:
    """Client dimension. Grain: one row per client (client_key = ``<source_system>:<client_id>``), its latest version.

    Region and segment are canonicalised through the alias tables in ``reference/`` (unknown
    spellings stay visible in ``data_issues``); the advisor e-mail is lower-cased and validated;
    is_active comes from the source's status (a drop without status means active).
    """
    reference = reference_files.load()
    dim = build_client_dim(raw_clients, reference)
    context.log.info(f"client_dim: {len(dim):,} clients from {len(raw_clients):,} raw rows")
    unknown = int((dim["region"].isna() | dim["segment"].isna()).sum())
    return dg.Output(
        dim,
        metadata=table_metadata(
            dim[["client_key", "client_name", "region", "segment", "is_active", "data_issues"]],
            active_clients=int(dim["is_active"].sum()),
            clients_with_unknown_region_or_segment=unknown,
            clients_without_valid_advisor_email=int(dim["primary_advisor_email"].isna().sum()),
        ),
    )


@dg.asset(group_name="core", kinds={"pandas", "csv"}, owners=OWNERS, metadata={"layer": "core"})
def territory_dim(
    context: dg.AssetExecutionContext, client_dim: pd.DataFrame, reference_files: ReferenceFiles, table_store: TableStore
) -> dg.Output[pd.DataFrame]:
    """Territory dimension. Grain: one row per territory ever issued (territory_id), plus ``UNASSIGNED``.

    territory_id = ``{REGION_PREFIX}_{SEGMENT_PREFIX}`` (first three letters, upper-cased). Issued
    ids are read back from the previous territory_dim and never renamed; a colliding newcomer gets
    the next suffix (``NOR_INS_2``).
    """
    reference = reference_files.load()
    previous = table_store.read_previous("territory_dim")
    dim = issue_territories(client_dim[["region", "segment"]], previous, reference.owner_roles, pd.Timestamp.now(tz="UTC"))
    issued = len(dim) - (0 if previous is None else len(previous))
    context.log.info(f"territory_dim: {len(dim)} territories ({issued} newly issued)")
    # current clients per territory, by the same rule assignments_fact uses
    active = client_dim[client_dim["is_active"]]
    per_territory = territory_of(active, dim).value_counts()
    counts = dim[["territory_id", "region", "segment"]].assign(
        current_clients=lambda t: t["territory_id"].map(per_territory).fillna(0).astype(int)
    )
    return dg.Output(
        dim,
        metadata=table_metadata(
            dim,
            newly_issued=issued,
            clients_per_territory=dg.MetadataValue.md(markdown_table(counts, limit=200)),
        ),
    )


@dg.asset(group_name="core", kinds={"pandas", "csv"}, owners=OWNERS, metadata={"layer": "core"})
def assignments_fact(context: dg.AssetExecutionContext, client_dim: pd.DataFrame, territory_dim: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Assignments fact. Grain: one row per (client_key, territory_id, assignment_type).

    Every client has one PRIMARY row in the territory of its (region, segment), with its advisor;
    the row is current while the client is active, so every active client has exactly one current PRIMARY.
    """
    fact = build_assignments_fact(client_dim, territory_dim)
    counts = client_counts(fact, territory_dim)
    context.log.info(f"assignments_fact: {len(fact):,} rows, {int(fact['is_current'].sum()):,} current")
    return dg.Output(
        fact,
        metadata=table_metadata(
            fact,
            current_assignments=int(fact["is_current"].sum()),
            clients_per_territory=dg.MetadataValue.md(markdown_table(counts, limit=200)),
        ),
    )
