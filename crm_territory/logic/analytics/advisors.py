"""The Advisors page: load against capacity, why an advisor is over capacity, and who changed advisor in the last run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.analytics.common import primary_rows
from crm_territory.logic.analytics.territories import advisors_by_territory


def advisor_load(fact: pd.DataFrame, advisor_dim: pd.DataFrame) -> pd.DataFrame:
    """One row per advisor of the roster (and any e-mail holding clients without being on it).

    Columns: Advisor, Name, Active, Territories, Clients (active PRIMARY clients: the load capacity counts), Capacity,
    Utilisation (Clients / Capacity), Over capacity, Why over capacity. An advisor is over capacity only when the
    territories it serves hold more active clients than all the active advisors serving them can take (capacity
    assignment guarantees it, ``logic/placement/capacity``) or when clients are pinned to it: the reason names them.
    """
    primary = primary_rows(fact)
    active = primary[primary["is_current"].astype(bool) & primary["primary_advisor_email"].notna()]
    load = active.groupby("primary_advisor_email").size()
    pinned = active[active["advisor_reason"] == "pinned"].groupby("primary_advisor_email").size()
    emails = pd.Index(advisor_dim["advisor_email"]).union(load.index)
    roster = advisor_dim.set_index("advisor_email").reindex(emails)
    out = pd.DataFrame(
        {
            "Advisor": emails.to_numpy(dtype=object),
            "Name": roster["advisor_name"].to_numpy(),
            "Active": roster["active"].astype("boolean").fillna(False).to_numpy(dtype=bool),
            "Territories": roster["territories"].fillna("").str.replace(";", ", ").to_numpy(),
            "Clients": load.reindex(emails, fill_value=0).to_numpy(dtype=np.int64),
            "Capacity": roster["capacity"].astype("Float64").fillna(0).to_numpy(dtype=np.int64),
        }
    )
    out["Utilisation"] = out["Clients"] / out["Capacity"].where(out["Capacity"] > 0)
    out["Over capacity"] = out["Clients"] > out["Capacity"]
    out["Why over capacity"] = ""
    over = out["Over capacity"].to_numpy()
    if over.any():
        reasons = _territory_pressure(active, advisor_dim)
        pins = pinned.reindex(out["Advisor"], fill_value=0).to_numpy()
        why = []
        for email, territories, pinned_here in zip(out["Advisor"][over], out["Territories"][over], pins[over]):
            parts = []
            if not territories:
                parts.append("not on the active roster (its clients were kept: no roster covers them)")
            else:
                parts.append(reasons.get(email, "its territories are over capacity as a whole"))
            if pinned_here:
                parts.append(f"{pinned_here} client(s) pinned to it by an override")
            why.append("; ".join(parts))
        out.loc[over, "Why over capacity"] = why
    return out.sort_values(["Utilisation", "Advisor"], ascending=[False, True], na_position="last", ignore_index=True)


def _territory_pressure(active: pd.DataFrame, advisor_dim: pd.DataFrame) -> dict[str, str]:
    """advisor e-mail -> "its territories X, Y hold N active clients for C capacity of the K advisors serving them".

    The group is the advisor's own territories; the capacity is that of every active advisor serving any of them.
    Loops over advisors only (a few dozen), with the per-client work done by the groupby above.
    """
    serving = advisors_by_territory(advisor_dim)
    clients = active.groupby("territory_id").size()
    out: dict[str, str] = {}
    for email, own in serving.groupby("advisor_email")["territory_id"]:
        territories = sorted(set(own))
        helpers = serving[serving["territory_id"].isin(territories)].drop_duplicates("advisor_email")
        held = int(clients.reindex(territories, fill_value=0).sum())
        capacity = int(helpers["capacity"].sum())
        if held > capacity:
            out[str(email)] = (
                f"its territories ({', '.join(territories)}) are over capacity as a whole: {held:,} active clients "
                f"for {capacity:,} places across the {len(helpers)} advisor(s) serving them"
            )
        else:
            out[str(email)] = (
                f"its territories ({', '.join(territories)}) hold {held:,} active clients for {capacity:,} places; "
                "the overflow comes from a group of territories sharing advisors with them"
            )
    return out


def advisor_changes(changes: pd.DataFrame) -> pd.DataFrame:
    """From ``overview.primary_changes``: the clients whose advisor changed (not new clients, not those that left)."""
    moved = changes[changes["Change"].isin(["new advisor", "moved territory and advisor"])]
    return moved[moved["Advisor before"].fillna("").ne(moved["Advisor now"].fillna(""))].reset_index(drop=True)


ADVISOR_REASON_WORDS = {
    "kept": "kept its advisor",
    "pinned": "pinned by an override",
    "assigned_new": "new client: given the advisor with the most room",
    "reassigned_inactive": "its advisor is no longer active",
    "reassigned_not_serving": "its advisor does not serve its territory",
    "reassigned_over_capacity": "its advisor was over capacity",
    "reassigned_unknown_advisor": "its advisor is not on the roster",
    "no_advisor_for_territory": "no active advisor serves its territory",
    "inactive_client": "the client is inactive",
    "unassigned_territory": "the client is UNASSIGNED (no territory)",
    "no_roster": "no advisor roster: the source's advisor kept",
}


def reason_in_words(reason: pd.Series) -> pd.Series:
    """advisor_reason codes as words (an unknown code kept as it is)."""
    return reason.map(ADVISOR_REASON_WORDS).fillna(reason)
