"""The History page: who owned a client on a date, a client's timeline, and the territory map as of a date.

The point-in-time questions are ``crm_territory.logic.history.point_in_time``'s; this adds the words and the
timeline's shape for the page.
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.history.point_in_time import owner_on, territory_map_as_of


def owner_on_date(assignments_history: pd.DataFrame, client_key: str, when) -> pd.DataFrame:
    """The client's assignments at ``when``: Assignment, Territory, Advisor, Active, Placed by, Since, Until."""
    rows = owner_on(assignments_history, client_key, when)
    return pd.DataFrame(
        {
            "Assignment": rows["assignment_type"].to_numpy(),
            "Territory": rows["territory_id"].to_numpy(),
            "Advisor": rows["primary_advisor_email"].to_numpy(),
            "Active": rows["assignment_is_current"].astype(bool).to_numpy(),
            "Placed by": rows["assigned_by"].to_numpy(),
            "Since": rows["valid_from"].to_numpy(),
            "Until": rows["valid_to"].to_numpy(),
        }
    )


def client_timeline(assignments_history: pd.DataFrame, client_key: str, now: pd.Timestamp) -> pd.DataFrame:
    """Every version of the client's assignments, oldest first: Assignment, Territory, Advisor, Placed by, Advisor
    reason, From, To (an open version ends at ``now``, for drawing), Open (still true)."""
    rows = assignments_history[assignments_history["client_key"] == client_key].sort_values(["valid_from", "assignment_type"])
    return pd.DataFrame(
        {
            "Assignment": rows["assignment_type"].to_numpy(),
            "Territory": rows["territory_id"].to_numpy(),
            "Advisor": rows["primary_advisor_email"].fillna("(none)").to_numpy(),
            "Placed by": rows["assigned_by"].to_numpy(),
            "Advisor reason": rows["advisor_reason"].to_numpy(),
            "From": rows["valid_from"].to_numpy(),
            "To": rows["valid_to"].fillna(now).to_numpy(),
            "Open": rows["valid_to"].isna().to_numpy(),
        }
    ).reset_index(drop=True)


def client_versions(client_history: pd.DataFrame, client_key: str) -> pd.DataFrame:
    """What client_dim said of the client over time: From, To, Name, Region, Segment, Parent organisation, Advisor,
    Active, AUM (USD)."""
    rows = client_history[client_history["client_key"] == client_key].sort_values("valid_from")
    return pd.DataFrame(
        {
            "From": rows["valid_from"].to_numpy(),
            "To": rows["valid_to"].to_numpy(),
            "Name": rows["client_name"].to_numpy(),
            "Region": rows["region"].to_numpy(),
            "Segment": rows["segment"].to_numpy(),
            "Parent organisation": rows["parent_org"].to_numpy(),
            "Advisor": rows["primary_advisor_email"].to_numpy(),
            "Active": rows["is_active"].astype(bool).to_numpy(),
            "AUM (USD)": rows["aum_usd"].astype(float).to_numpy(),
        }
    ).reset_index(drop=True)


def territory_map(assignments_history: pd.DataFrame, when) -> pd.DataFrame:
    """The territory map at ``when``: Territory, Active clients, Advisors (count), Advisor list."""
    mapped = territory_map_as_of(assignments_history, when)
    return pd.DataFrame(
        {
            "Territory": mapped["territory_id"].to_numpy(),
            "Active clients": mapped["current_clients"].to_numpy(),
            "Advisors": mapped["advisors"].map(len).to_numpy(),
            "Advisor list": mapped["advisors"].map(", ".join).to_numpy(),
        }
    )


def history_span(assignments_history: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The first and the last instant the history records (the first run's start, the latest change)."""
    if assignments_history.empty:
        return None
    last = max(
        assignments_history["valid_from"].max(),
        assignments_history["valid_to"].max(skipna=True)
        if assignments_history["valid_to"].notna().any()
        else assignments_history["valid_from"].max(),
    )
    return assignments_history["valid_from"].min(), last


def find_clients(client_dim: pd.DataFrame, text: str, limit: int = 50) -> pd.DataFrame:
    """Clients whose name or key holds ``text`` (case-insensitive, plain text), names starting with it first.

    Columns: client_key, Client, Region, Segment; at most ``limit`` rows (a page lists them to pick from).
    """
    needle = text.strip()
    if not needle:
        return pd.DataFrame(columns=["client_key", "Client", "Region", "Segment"])
    names = client_dim["client_name"].fillna("")
    hit = names.str.contains(needle, case=False, regex=False) | client_dim["client_key"].str.contains(
        needle, case=False, regex=False
    )
    found = client_dim[hit]
    starts = ~found["client_name"].fillna("").str.lower().str.startswith(needle.lower())
    found = found.assign(_starts=starts.to_numpy()).sort_values(["_starts", "client_name", "client_key"]).head(limit)
    return pd.DataFrame(
        {
            "client_key": found["client_key"].to_numpy(),
            "Client": found["client_name"].to_numpy(),
            "Region": found["region"].to_numpy(),
            "Segment": found["segment"].to_numpy(),
        }
    )
