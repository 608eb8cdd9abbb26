"""The Rules preview page: where a candidate rules file would move clients, and each advisor's load before and after.

Everything here is computed from the preview's per-client diff (the ``assignments_preview`` rows, which
``crm_territory.logic.rules.preview`` produces) and the current assignments: the after-side is the current load
minus the clients leaving plus those arriving, so it needs no second evaluation of the candidate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.analytics.common import PRIMARY, current_rows

NONE = "(none)"


def flows(changes: pd.DataFrame) -> pd.DataFrame:
    """Clients moving territory, per (From territory, To territory), largest flow first."""
    moving = changes[changes["territory_before"].fillna(NONE).ne(changes["territory_after"])]
    counts = (
        pd.DataFrame({"From territory": moving["territory_before"].fillna(NONE), "To territory": moving["territory_after"]})
        .groupby(["From territory", "To territory"])
        .size()
        .rename("Clients")
        .reset_index()
    )
    return counts.sort_values(["Clients", "From territory", "To territory"], ascending=[False, True, True], ignore_index=True)


def client_diff(changes: pd.DataFrame, client_dim: pd.DataFrame) -> pd.DataFrame:
    """The per-client diff with the client's name and AUM: Client, client_key, What changes, territories and advisors
    before and after, Placed by (after)."""
    named = changes.merge(client_dim[["client_key", "client_name", "aum_usd"]], on="client_key", how="left")
    return pd.DataFrame(
        {
            "Client": named["client_name"].to_numpy(),
            "client_key": named["client_key"].to_numpy(),
            "What changes": named["change"].to_numpy(),
            "Territory before": named["territory_before"].to_numpy(),
            "Territory after": named["territory_after"].to_numpy(),
            "Advisor before": named["advisor_before"].to_numpy(),
            "Advisor after": named["advisor_after"].to_numpy(),
            "Placed by (after)": named["assigned_by_after"].to_numpy(),
            "AUM (USD)": named["aum_usd"].astype(float).to_numpy(),
        }
    )


def territory_load(fact: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """Active PRIMARY clients per territory now and under the candidate: Territory, Clients before, Clients after, Change.

    Only territories that hold clients before or after are listed, those that change first.
    """
    before = current_rows(fact, PRIMARY)["territory_id"].value_counts()
    moved = changes["territory_before"].ne(changes["territory_after"])
    leaving = changes.loc[moved, "territory_before"].dropna().value_counts()
    arriving = changes.loc[moved, "territory_after"].dropna().value_counts()
    ids = before.index.union(leaving.index).union(arriving.index)
    b = before.reindex(ids, fill_value=0)
    after = b - leaving.reindex(ids, fill_value=0) + arriving.reindex(ids, fill_value=0)
    out = pd.DataFrame(
        {
            "Territory": ids.to_numpy(dtype=object),
            "Clients before": b.to_numpy(dtype=np.int64),
            "Clients after": after.to_numpy(dtype=np.int64),
        }
    )
    out["Change"] = out["Clients after"] - out["Clients before"]
    out = out[(out["Clients before"] > 0) | (out["Clients after"] > 0)]
    order = out["Change"].abs()
    return (
        out.assign(_o=order).sort_values(["_o", "Territory"], ascending=[False, True]).drop(columns="_o").reset_index(drop=True)
    )


def advisor_load(fact: pd.DataFrame, changes: pd.DataFrame, advisor_dim: pd.DataFrame) -> pd.DataFrame:
    """Active PRIMARY clients per advisor now and under the candidate, against capacity.

    Columns: Advisor, Capacity, Clients before, Clients after, Change, Utilisation before, Utilisation after,
    Over capacity after. Advisors holding no client before or after are left out; the largest change first.
    """
    held = current_rows(fact, PRIMARY)["primary_advisor_email"].dropna().value_counts()
    moved = changes["advisor_before"].fillna("").ne(changes["advisor_after"].fillna(""))
    leaving = changes.loc[moved, "advisor_before"].dropna().value_counts()
    arriving = changes.loc[moved, "advisor_after"].dropna().value_counts()
    emails = held.index.union(leaving.index).union(arriving.index)
    before = held.reindex(emails, fill_value=0)
    after = before - leaving.reindex(emails, fill_value=0) + arriving.reindex(emails, fill_value=0)
    capacity = advisor_dim.set_index("advisor_email")["capacity"].astype(float).reindex(emails)
    out = pd.DataFrame(
        {
            "Advisor": emails.to_numpy(dtype=object),
            "Capacity": capacity.to_numpy(),
            "Clients before": before.to_numpy(dtype=np.int64),
            "Clients after": after.to_numpy(dtype=np.int64),
        }
    )
    out["Change"] = out["Clients after"] - out["Clients before"]
    places = out["Capacity"].where(out["Capacity"] > 0)
    out["Utilisation before"] = out["Clients before"] / places
    out["Utilisation after"] = out["Clients after"] / places
    out["Over capacity after"] = out["Clients after"] > out["Capacity"].fillna(0)
    out = out[(out["Clients before"] > 0) | (out["Clients after"] > 0)]
    order = out["Change"].abs()
    return out.assign(_o=order).sort_values(["_o", "Advisor"], ascending=[False, True]).drop(columns="_o").reset_index(drop=True)


def preview_headline(changes: pd.DataFrame) -> dict[str, int]:
    """Clients that would change, of which territory and advisor moves (a client can count in both)."""
    return {
        "Clients changing": int(len(changes)),
        "Changing territory": int(changes["change"].str.contains("territory").sum()),
        "Changing advisor": int(changes["change"].str.contains("advisor").sum()),
    }
