"""``assignments_fact``: which territory and advisor own each client, and why.

The rules (``rule_engine.evaluate``) place each client: a PRIMARY target and SECONDARY rows (the
parent organisation's territory, overlay specialists). Territory ids come from the registry.
Advisors: an override's pinned advisor always; otherwise, with an advisor roster, capacity-aware
assignment (``capacity.assign_advisors``) keeps current advisors when allowed and balances the
rest; without a roster, the advisor the source names stays. Every row says which rule placed it
(``assigned_by``), which tier gave the segment (``segment_rule``), why it has its advisor
(``advisor_reason``) and the rules version, so "why is this client here" is in the table itself.

Rows are current while the client is active: every active client has exactly one current PRIMARY.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_territory.logic.placement.advisors import split_list
from crm_territory.logic.placement.capacity import CapacityResult, assign_advisors
from crm_territory.logic.placement.territories import territory_ids
from crm_territory.logic.rules.engine import Placement
from crm_territory.schemas import UNASSIGNED_TERRITORY_ID, AssignmentsFact, columns_of


@dataclass(frozen=True)
class Assignments:
    fact: pd.DataFrame
    capacity: CapacityResult | None  # None without an advisor roster or without clients to place


def _advisors(
    client_dim: pd.DataFrame,
    primary_ids: pd.Series,
    placement: Placement,
    advisor_dim: pd.DataFrame | None,
):
    """(advisor e-mail, reason, capacity result) for each client's PRIMARY row.

    "Current advisor" is the one the source names: the engine's own choices are recomputed each run, so a
    re-run on the same input gives the same table (the price: a client the engine placed can be re-placed
    when the book around it changes).
    """
    pinned = placement.clients["pinned_advisor"]
    email = client_dim["primary_advisor_email"].where(pinned.isna(), pinned).astype(object)
    reason = np.where(pinned.notna(), "pinned", "no_roster").astype(object)
    reason[~client_dim["is_active"].to_numpy() & pinned.isna().to_numpy()] = "inactive_client"
    unassigned = (primary_ids == UNASSIGNED_TERRITORY_ID).to_numpy()
    reason[unassigned & pinned.isna().to_numpy()] = "unassigned_territory"

    # capacity assignment: active clients in a real territory, when there is a roster
    eligible = client_dim["is_active"].to_numpy() & ~unassigned
    if advisor_dim is None or advisor_dim.empty or not eligible.any():
        return email, reason, None
    # With a roster, an active client in UNASSIGNED has no advisor until it is placed: counting the source's
    # advisor there would load advisors outside the capacity guarantee.
    email = email.to_numpy(dtype=object)
    email[unassigned & client_dim["is_active"].to_numpy() & pinned.isna().to_numpy()] = None
    advisors = advisor_dim.assign(
        territories=split_list(advisor_dim["territories"]), capacity=advisor_dim["capacity"].astype(int)
    )
    clients = pd.DataFrame(
        {
            "client_key": client_dim["client_key"].to_numpy()[eligible],
            "territory_id": primary_ids.to_numpy()[eligible],
            "current_advisor": client_dim["primary_advisor_email"].to_numpy()[eligible],
            "pinned_advisor": pinned.to_numpy()[eligible],
        }
    )
    result = assign_advisors(clients, advisors)
    email[eligible] = result.assignments["advisor_email"].to_numpy(dtype=object)
    reason[eligible] = result.assignments["reason"].to_numpy(dtype=object)
    return pd.Series(email, index=client_dim.index), reason, result


def build_assignments_fact(
    client_dim: pd.DataFrame,
    territory_dim: pd.DataFrame,
    placement: Placement,
    advisor_dim: pd.DataFrame | None = None,
) -> Assignments:
    placed = placement.clients
    primary_ids = territory_ids(placed["target_region"], placed["target_segment"], territory_dim)
    email, reason, capacity = _advisors(client_dim, primary_ids, placement, advisor_dim)
    active = client_dim.set_index("client_key")["is_active"]
    primary = pd.DataFrame(
        {
            "client_key": placed["client_key"].to_numpy(),
            "territory_id": primary_ids.to_numpy(),
            "primary_advisor_email": np.asarray(email, dtype=object),
            "assignment_type": np.full(len(placed), "PRIMARY", dtype=object),
            "is_current": client_dim["is_active"].to_numpy(dtype=bool),
            "assigned_by": placed["assigned_by"].to_numpy(),
            "segment_rule": placed["segment_rule"].to_numpy(),
            "advisor_reason": np.asarray(reason, dtype=object),
        }
    )
    extra = placement.secondary
    overlay_ids = extra["overlay"]
    geographic = territory_ids(extra["target_region"], extra["target_segment"], territory_dim)
    secondary = pd.DataFrame(
        {
            "client_key": extra["client_key"].to_numpy(),
            "territory_id": overlay_ids.where(overlay_ids.notna(), geographic).to_numpy(),
            "primary_advisor_email": None,
            "assignment_type": "SECONDARY",
            "is_current": extra["client_key"].map(active).to_numpy(dtype=bool),
            "assigned_by": extra["assigned_by"].to_numpy(),
            "segment_rule": None,
            "advisor_reason": None,
        }
    )
    fact = pd.concat([primary, secondary], ignore_index=True) if len(secondary) else primary
    fact["rules_version"] = placement.rules_version
    return Assignments(fact=fact[columns_of(AssignmentsFact)], capacity=capacity)


def current_primary_territories(assignments_fact: pd.DataFrame) -> pd.Series:
    """The territory of each current PRIMARY assignment."""
    current = assignments_fact["is_current"] & (assignments_fact["assignment_type"] == "PRIMARY")
    return assignments_fact.loc[current, "territory_id"]


def client_counts(territory_ids: pd.Series, territory_dim: pd.DataFrame) -> pd.DataFrame:
    """Clients per territory from one territory id per client (every territory listed, zero included)."""
    counts = territory_ids.value_counts()
    out = territory_dim[["territory_id", "region", "segment"]].copy()
    out["current_clients"] = out["territory_id"].map(counts).fillna(0).astype(int)
    return out
