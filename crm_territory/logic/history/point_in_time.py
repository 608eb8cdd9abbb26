"""Point-in-time questions over a history table: what was true at an instant, who owned a client, the territory map then.

Intervals are half-open, ``[valid_from, valid_to)`` (see ``scd2``): at the instant of a change exactly
one version of a key is true, the new one. A naive instant (or a date such as "2026-03-01") is UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.history.scd2 import ASSIGNMENT_IS_CURRENT, utc_timestamp


def as_of(history: pd.DataFrame, when) -> pd.DataFrame:
    """The rows that were true at ``when``: valid_from <= when < valid_to (or valid_to missing).

    Half-open intervals, so at the instant of a change exactly one version of the key is true: the
    new one. A naive ``when`` (or a date such as "2026-03-01") is taken as UTC.
    """
    at = utc_timestamp(when)
    valid = (history["valid_from"] <= at) & (history["valid_to"].isna() | (at < history["valid_to"]))
    return history[valid.to_numpy()].reset_index(drop=True)


def owner_on(assignments_history: pd.DataFrame, client_key: str, when) -> pd.DataFrame:
    """Who owned ``client_key`` at ``when``: its PRIMARY row (territory and advisor), then its SECONDARY rows.

    The history rows true at ``when`` for that client, PRIMARY first, then by territory_id. Empty
    when the client had no assignment then (not yet known, or gone from every source). A PRIMARY row
    whose ``assignment_is_current`` is False is the last assignment of a client that was inactive.
    """
    rows = assignments_history[assignments_history["client_key"] == client_key]
    valid = as_of(rows, when)
    rank = (valid["assignment_type"] != "PRIMARY").astype(int)
    order = np.lexsort([valid["territory_id"].to_numpy(dtype=str), rank.to_numpy()])
    return valid.take(order).reset_index(drop=True)


def territory_map_as_of(assignments_history: pd.DataFrame, when) -> pd.DataFrame:
    """The territory map at ``when``: per territory_id, its current PRIMARY clients and their advisors.

    Columns: territory_id, current_clients (clients whose PRIMARY row was true then and, when the
    history carries ``assignment_is_current``, whose assignment was current, i.e. active clients),
    advisors (sorted distinct advisor e-mails of those clients, missing ones left out). Only
    territories with at least one such client are listed (history does not know the territories
    that had none); ordered by territory_id.
    """
    valid = as_of(assignments_history, when)
    primary = valid["assignment_type"] == "PRIMARY"
    if ASSIGNMENT_IS_CURRENT in valid.columns:
        primary &= valid[ASSIGNMENT_IS_CURRENT].astype(bool)
    rows = valid.loc[primary, ["territory_id", "client_key", "primary_advisor_email"]]
    counts = rows.groupby("territory_id")["client_key"].nunique()
    advisors = (
        rows.dropna(subset=["primary_advisor_email"])
        .drop_duplicates(["territory_id", "primary_advisor_email"])
        .sort_values(["territory_id", "primary_advisor_email"])
        .groupby("territory_id")["primary_advisor_email"]
        .agg(list)
    )
    out = pd.DataFrame({"territory_id": counts.index.astype(object), "current_clients": counts.to_numpy(dtype=np.int64)})
    listed = out["territory_id"].map(advisors)
    out["advisors"] = [list(a) if isinstance(a, list) else [] for a in listed]
    return out.sort_values("territory_id", kind="stable").reset_index(drop=True)
