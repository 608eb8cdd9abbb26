"""The territory registry: territory ids issued from the rules' targets, never renamed or reused."""

import dagster as dg
import pandas as pd

from crm_territory.logic.placement.assignments import client_counts
from crm_territory.logic.placement.pipeline import build_territories
from crm_territory.logic.placement.territories import territory_ids
from crm_territory.logic.rules.engine import evaluate
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.guards import refuse_to_forget, rules_in_force
from crm_territory.wiring.metadata import markdown_table, table_metadata


class TerritoryDimConfig(dg.Config):
    reissue_territory_ids: bool = False
    """Start a new territory registry although an earlier run issued ids (they may be renumbered)."""


@table_asset("territory_dim", automation_condition=FOLLOW_UPSTREAM)
def territory_dim(
    context: dg.AssetExecutionContext,
    config: TerritoryDimConfig,
    client_dim: pd.DataFrame,
    territory_rules: pd.DataFrame,
    reference_files: ReferenceFiles,
    rules_files: RulesFiles,
    table_store: TableStore,
) -> dg.Output[pd.DataFrame]:
    """The territories are the (region, segment) targets the rules give the clients, plus the rules'
    overlay territories. territory_id = ``{REGION_PREFIX}_{SEGMENT_PREFIX}`` (first three letters,
    upper-cased); an overlay's id is its code. Issued ids are read back from the previous
    territory_dim and never renamed; a colliding newcomer gets the next suffix (``NOR_INS_2``).
    """
    reference = reference_files.load()
    rules = rules_in_force(rules_files, territory_rules)
    previous = table_store.read_previous("territory_dim")
    if previous is None and not config.reissue_territory_ids:
        refuse_to_forget(
            context,
            table_store,
            "the registry of issued territory ids; re-issuing could renumber them",
            "ops.territory_dim.config.reissue_territory_ids: true",
        )
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
