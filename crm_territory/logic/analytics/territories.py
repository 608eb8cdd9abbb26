"""The Territories page: per territory clients, active clients and AUM (PRIMARY and SECONDARY), and a territory's detail."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from crm_territory.logic.analytics.common import PRIMARY, SECONDARY, primary_rows, with_client

CLIENT_COLUMNS = ["client_name", "region", "segment", "parent_org", "is_active", "aum_usd", "business_type"]


def territory_summary(
    fact: pd.DataFrame, client_dim: pd.DataFrame, territory_dim: pd.DataFrame, advisor_dim: pd.DataFrame
) -> pd.DataFrame:
    """One row per territory: Territory, Region, Segment, Owner role, Clients (PRIMARY, active or not), Active clients,
    AUM (USD) (of its PRIMARY clients), Secondary clients (current SECONDARY rows), Advisors (active, serving it),
    Capacity (theirs, summed) and Utilisation (active clients / capacity). Territories issued but empty are listed with 0.
    """
    rows = with_client(fact[["client_key", "territory_id", "assignment_type", "is_current"]], client_dim, ["aum_usd"])
    primary = rows[rows["assignment_type"] == PRIMARY]
    secondary = rows[(rows["assignment_type"] == SECONDARY) & rows["is_current"].astype(bool)]
    by_territory = primary.groupby("territory_id").agg(
        clients=("client_key", "size"), active=("is_current", "sum"), aum=("aum_usd", "sum")
    )
    serving = advisors_by_territory(advisor_dim)
    capacity = serving.groupby("territory_id").agg(advisors=("advisor_email", "nunique"), capacity=("capacity", "sum"))
    ids = pd.Index(territory_dim["territory_id"]).union(by_territory.index)
    dims = territory_dim.set_index("territory_id").reindex(ids)
    out = pd.DataFrame(
        {
            "Territory": ids.to_numpy(dtype=object),
            "Region": dims["region"].to_numpy(),
            "Segment": dims["segment"].to_numpy(),
            "Owner role": dims["owner_role"].to_numpy(),
            "Clients": by_territory["clients"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "Active clients": by_territory["active"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "AUM (USD)": by_territory["aum"].reindex(ids, fill_value=0.0).to_numpy(dtype=float),
            "Secondary clients": secondary.groupby("territory_id").size().reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "Advisors": capacity["advisors"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "Capacity": capacity["capacity"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        utilisation = out["Active clients"] / out["Capacity"].where(out["Capacity"] > 0)
    out["Utilisation"] = utilisation.astype(float)
    return out.sort_values("Clients", ascending=False, kind="stable", ignore_index=True)


def advisors_by_territory(advisor_dim: pd.DataFrame) -> pd.DataFrame:
    """One row per (territory_id, active advisor serving it) with the advisor's capacity (advisor_dim.territories split)."""
    active = advisor_dim[advisor_dim["active"].astype(bool) & advisor_dim["territories"].notna()]
    pairs = active.assign(territory_id=active["territories"].str.split(";")).explode("territory_id")
    pairs = pairs[pairs["territory_id"].astype(bool)]
    return pairs[["territory_id", "advisor_email", "advisor_name", "capacity"]].reset_index(drop=True)


def territory_clients(fact: pd.DataFrame, client_dim: pd.DataFrame, territory_id: str, search: str = "") -> pd.DataFrame:
    """The clients placed in ``territory_id`` (PRIMARY and SECONDARY rows), ``search`` matched in name, key, parent or
    advisor (case-insensitive, plain text). Columns people read; sorted by AUM, largest first.
    """
    rows = fact[fact["territory_id"] == territory_id]
    rows = with_client(rows, client_dim, CLIENT_COLUMNS)
    out = pd.DataFrame(
        {
            "Client": rows["client_name"].to_numpy(),
            "client_key": rows["client_key"].to_numpy(),
            "Assignment": rows["assignment_type"].to_numpy(),
            "Active": rows["is_current"].astype(bool).to_numpy(),
            "Advisor": rows["primary_advisor_email"].to_numpy(),
            "Placed by": rows["assigned_by"].to_numpy(),
            "Advisor reason": rows["advisor_reason"].to_numpy(),
            "Region": rows["region"].to_numpy(),
            "Segment": rows["segment"].to_numpy(),
            "Parent organisation": rows["parent_org"].to_numpy(),
            "AUM (USD)": rows["aum_usd"].astype(float).to_numpy(),
        }
    )
    text = search.strip()
    if text:
        haystack = (
            out["Client"].fillna("")
            + "\n"
            + out["client_key"]
            + "\n"
            + out["Parent organisation"].fillna("")
            + "\n"
            + out["Advisor"].fillna("")
        )
        out = out[haystack.str.contains(text, case=False, regex=False)]
    return out.sort_values(["AUM (USD)", "client_key"], ascending=[False, True], na_position="last", ignore_index=True)


def territory_advisors(fact: pd.DataFrame, advisor_dim: pd.DataFrame, territory_id: str) -> pd.DataFrame:
    """The advisors of ``territory_id``: those the roster has serving it and any holding its PRIMARY clients.

    Columns: Advisor, Name, Serves it (per the roster), Clients here (active PRIMARY), Clients in all (active PRIMARY),
    Capacity, Utilisation (all their clients / capacity).
    """
    primary = primary_rows(fact)
    active_primary = primary[primary["is_current"].astype(bool) & primary["primary_advisor_email"].notna()]
    load = active_primary.groupby("primary_advisor_email").size()
    here = active_primary[active_primary["territory_id"] == territory_id].groupby("primary_advisor_email").size()
    serving = advisors_by_territory(advisor_dim)
    serving_here = set(serving.loc[serving["territory_id"] == territory_id, "advisor_email"])
    emails = sorted(serving_here | set(here.index))
    roster = advisor_dim.set_index("advisor_email").reindex(emails)
    capacity = roster["capacity"].astype(float)
    out = pd.DataFrame(
        {
            "Advisor": emails,
            "Name": roster["advisor_name"].to_numpy(),
            "Serves it": [email in serving_here for email in emails],
            "Clients here": here.reindex(emails, fill_value=0).to_numpy(dtype=np.int64),
            "Clients in all": load.reindex(emails, fill_value=0).to_numpy(dtype=np.int64),
            "Capacity": capacity.to_numpy(),
        }
    )
    out["Utilisation"] = out["Clients in all"] / out["Capacity"].where(out["Capacity"] > 0)
    return out.sort_values(["Clients here", "Advisor"], ascending=[False, True], ignore_index=True)


def territory_rules_used(fact: pd.DataFrame, territory_rules: pd.DataFrame, territory_id: str) -> pd.DataFrame:
    """The rules that placed this territory's clients: Placed by, Kind, Criteria, Target, Clients (rows), largest first.

    ``fallback`` (no rule matched) and ``parent_org`` (the parent's SECONDARY row) are explained in words.
    """
    rows = fact[fact["territory_id"] == territory_id]
    counts = rows.groupby(["assigned_by", "assignment_type"]).size().rename("Clients").reset_index()
    rules = territory_rules.set_index("rule_id")
    words = {
        "fallback": "no rule matched (region or segment unknown): UNASSIGNED",
        "parent_org": "the parent organisation's territory (SECONDARY)",
    }
    criteria = counts["assigned_by"].map(rules["criteria"]).map(_criteria_text, na_action="ignore")
    return pd.DataFrame(
        {
            "Placed by": counts["assigned_by"].to_numpy(),
            "Assignment": counts["assignment_type"].to_numpy(),
            "Kind": counts["assigned_by"]
            .map({**words, **rules["kind"].to_dict()})
            .astype(object)
            .where(lambda k: k.notna(), "")
            .to_numpy(),
            "When": criteria.fillna("").to_numpy(),
            "Gives": counts["assigned_by"].map(rules["target"]).fillna("").to_numpy(),
            "Clients": counts["Clients"].to_numpy(dtype=np.int64),
        }
    ).sort_values(["Clients", "Placed by"], ascending=[False, True], ignore_index=True)


def _criteria_text(criteria: str) -> str:
    """A rule's `when` (JSON) as one readable line: ``region not_null true; segment eq Retail``."""
    try:
        parsed = json.loads(criteria)
    except (TypeError, ValueError):
        return str(criteria)
    if not isinstance(parsed, dict):
        return str(criteria)
    parts = []
    for column, ops in parsed.items():
        if isinstance(ops, dict):
            parts += [f"{column} {op} {value if isinstance(value, str) else json.dumps(value)}" for op, value in ops.items()]
        else:
            parts.append(f"{column} {ops}")
    return "; ".join(parts)
