"""The advisor dimension: the CRM's roster with its coverage translated into territory ids."""

import dagster as dg
import pandas as pd

from crm_territory.logic.placement.advisors import build_advisor_dim
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.storage.table_store import missing_ok_input
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.metadata import table_metadata


@table_asset("advisor_dim", automation_condition=FOLLOW_UPSTREAM, ins={"crm_api_advisors": missing_ok_input()})
def advisor_dim(
    context: dg.AssetExecutionContext,
    territory_dim: pd.DataFrame,
    crm_api_advisors: pd.DataFrame | None,
    reference_files: ReferenceFiles,
) -> dg.Output[pd.DataFrame]:
    """Built from the last CRM API roster (``crm_api_advisors``), its regions and segments translated
    to territory ids through territory_dim. Without a roster yet (no API pull), the table is empty
    and assignments keep the advisors the sources name.
    """
    roster = crm_api_advisors
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
