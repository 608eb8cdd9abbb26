"""The whole placement, as one pure function: rules -> territories -> assignments.

The assets run these steps one per asset (so each table is checked on its own); the preview of a
candidate rules file and the tests run them here in one go, with nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from crm_territory.logic.placement.advisors import build_advisor_dim
from crm_territory.logic.placement.assignments import Assignments, build_assignments_fact
from crm_territory.logic.placement.territories import issue_territories
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.logic.rules.engine import Placement, evaluate
from crm_territory.logic.rules.model import Rules


def territory_targets(placement: Placement) -> pd.DataFrame:
    """Every (region, segment) the placement names, PRIMARY and SECONDARY."""
    return pd.concat(
        [placement.clients[["target_region", "target_segment"]], placement.secondary[["target_region", "target_segment"]]]
    ).rename(columns={"target_region": "region", "target_segment": "segment"})


def build_territories(
    placement: Placement, rules: Rules, reference: ReferenceData, previous: pd.DataFrame | None, issued_at: pd.Timestamp
) -> pd.DataFrame:
    """The territory registry the placement needs: previous ids kept, new targets and overlays issued."""
    owner_roles = {**reference.owner_roles, **rules.territories.owner_roles}
    overlays = {o.overlay: o.owner_role for o in rules.secondary.overlays}
    return issue_territories(territory_targets(placement), previous, owner_roles, issued_at, overlays)


@dataclass(frozen=True)
class Star:
    placement: Placement
    territory_dim: pd.DataFrame
    advisor_dim: pd.DataFrame | None
    assignments: Assignments


def build_star(
    client_dim: pd.DataFrame,
    rules: Rules,
    reference: ReferenceData,
    *,
    previous_territories: pd.DataFrame | None = None,
    advisor_dim: pd.DataFrame | None = None,
    roster: pd.DataFrame | None = None,
    issued_at: pd.Timestamp | None = None,
) -> Star:
    """``advisor_dim`` as given, or built from the advisor ``roster`` on the territories this placement issues."""
    placement = evaluate(client_dim, rules)
    territories = build_territories(placement, rules, reference, previous_territories, issued_at or pd.Timestamp.now(tz="UTC"))
    if advisor_dim is None and roster is not None:
        advisor_dim = build_advisor_dim(roster, territories, reference)
    return Star(placement, territories, advisor_dim, build_assignments_fact(client_dim, territories, placement, advisor_dim))
