"""``assignments_fact``: which territory and advisor own each client.

One PRIMARY row per client. ``is_current`` follows the client's status: an active client's row is
current, an inactive client's row records its last assignment and is not current. (SECONDARY rows
and history come with the rules engine.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.territories import territory_of
from crm_territory.schemas import AssignmentsFact, columns_of


def build_assignments_fact(client_dim: pd.DataFrame, territory_dim: pd.DataFrame) -> pd.DataFrame:
    fact = pd.DataFrame(
        {
            "client_key": client_dim["client_key"],
            "territory_id": territory_of(client_dim, territory_dim),
            "primary_advisor_email": client_dim["primary_advisor_email"],
            "assignment_type": np.full(len(client_dim), "PRIMARY", dtype=object),
            "is_current": client_dim["is_active"].to_numpy(dtype=bool),
        }
    )
    return fact.reset_index(drop=True)[columns_of(AssignmentsFact)]


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
