"""The Overview page: the book in five numbers, the region x segment grid, and what the last run changed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.analytics.common import PRIMARY
from crm_territory.logic.history.point_in_time import as_of

NOT_KNOWN = "(unknown)"


def headline(client_dim: pd.DataFrame, territory_dim: pd.DataFrame, advisor_dim: pd.DataFrame) -> dict[str, float]:
    """Clients, active clients, AUM (USD, every client), territories (UNASSIGNED not counted), active advisors."""
    return {
        "Clients": int(len(client_dim)),
        "Active clients": int(client_dim["is_active"].astype(bool).sum()),
        "AUM (USD)": float(client_dim["aum_usd"].sum(min_count=1) or 0.0),
        "Territories": int((territory_dim["territory_id"] != "UNASSIGNED").sum()),
        "Active advisors": int(advisor_dim["active"].astype(bool).sum()),
    }


def region_segment_grid(client_dim: pd.DataFrame) -> pd.DataFrame:
    """One row per (Region, Segment) holding clients: Clients, Active clients, AUM (USD). Unknown values as '(unknown)'."""
    frame = pd.DataFrame(
        {
            "Region": client_dim["region"].fillna(NOT_KNOWN),
            "Segment": client_dim["segment"].fillna(NOT_KNOWN),
            "active": client_dim["is_active"].astype(bool),
            "aum": client_dim["aum_usd"].astype(float),
        }
    )
    grid = frame.groupby(["Region", "Segment"], sort=True).agg(
        **{"Clients": ("active", "size"), "Active clients": ("active", "sum"), "AUM (USD)": ("aum", "sum")}
    )
    grid["Active clients"] = grid["Active clients"].astype(int)
    return grid.reset_index()


def last_change_at(*histories: pd.DataFrame) -> pd.Timestamp | None:
    """The start of the latest run that changed anything: the newest valid_from or valid_to in the histories."""
    stamps = [s for h in histories for s in (h["valid_from"].max(), h["valid_to"].max()) if len(h) and pd.notna(s)]
    return max(stamps) if stamps else None


def primary_changes(assignments_history: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Clients whose PRIMARY territory or advisor changed at ``at`` (a run's start), with the new placement's reasons.

    Columns: client_key, Territory before, Territory now, Advisor before, Advisor now, Change (new client, moved
    territory, new advisor, left the book), Placed by (rule), Advisor reason. Compares the rows true an instant
    before ``at`` with those true at ``at`` (the history's half-open intervals).
    """
    primary = assignments_history[assignments_history["assignment_type"] == PRIMARY]
    cols = ["client_key", "territory_id", "primary_advisor_email", "assigned_by", "advisor_reason"]
    before = as_of(primary, at - pd.Timedelta(1, "ns"))[cols].set_index("client_key")
    after = as_of(primary, at)[cols].set_index("client_key")
    both = before.join(after, how="outer", lsuffix="_before", rsuffix="_after")
    new = both["territory_id_before"].isna()
    gone = both["territory_id_after"].isna()
    moved = ~new & ~gone & both["territory_id_before"].ne(both["territory_id_after"])
    advisor = ~new & ~gone & both["primary_advisor_email_before"].fillna("").ne(both["primary_advisor_email_after"].fillna(""))
    changed = both[new | gone | moved | advisor]
    kind = np.select(
        [new[changed.index], gone[changed.index], moved[changed.index] & advisor[changed.index], moved[changed.index]],
        ["new client", "left the book", "moved territory and advisor", "moved territory"],
        "new advisor",
    )
    return pd.DataFrame(
        {
            "client_key": changed.index.to_numpy(),
            "Change": kind,
            "Territory before": changed["territory_id_before"].to_numpy(),
            "Territory now": changed["territory_id_after"].to_numpy(),
            "Advisor before": changed["primary_advisor_email_before"].to_numpy(),
            "Advisor now": changed["primary_advisor_email_after"].to_numpy(),
            "Placed by": changed["assigned_by_after"].to_numpy(),
            "Advisor reason": changed["advisor_reason_after"].to_numpy(),
        }
    ).sort_values(["Change", "client_key"], kind="stable", ignore_index=True)


def client_changes(client_history: pd.DataFrame, at: pd.Timestamp) -> dict[str, int]:
    """How many clients the run at ``at`` added, changed (a new version of a known client) and closed (left every source)."""
    opened = client_history["valid_from"] == at
    closed = client_history["valid_to"] == at
    opened_keys = set(client_history.loc[opened, "client_key"])
    closed_keys = set(client_history.loc[closed, "client_key"])
    return {
        "New clients": len(opened_keys - closed_keys),
        "Clients changed": len(opened_keys & closed_keys),
        "Clients gone": len(closed_keys - opened_keys),
    }


def change_summary(changes: pd.DataFrame) -> pd.DataFrame:
    """Counts per kind of change (Change, Clients), largest first."""
    counts = changes["Change"].value_counts()
    return pd.DataFrame({"Change": counts.index.to_numpy(dtype=object), "Clients": counts.to_numpy(dtype=np.int64)})
