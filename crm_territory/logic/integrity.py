"""Integrity rules across tables. Each returns the violating rows (empty = the rule holds)."""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.clients import client_keys
from crm_territory.logic.ingest import API_BATCH


def orphan_fact_rows(assignments_fact: pd.DataFrame, client_dim: pd.DataFrame, territory_dim: pd.DataFrame) -> pd.DataFrame:
    """Fact rows whose client_key or territory_id is not in its dimension."""
    unknown_client = ~assignments_fact["client_key"].isin(client_dim["client_key"])
    unknown_territory = ~assignments_fact["territory_id"].isin(territory_dim["territory_id"])
    bad = assignments_fact[unknown_client | unknown_territory].copy()
    bad["problem"] = (
        unknown_client[bad.index].map({True: "client_key not in client_dim", False: ""})
        + (unknown_client & unknown_territory)[bad.index].map({True: "; ", False: ""})
        + unknown_territory[bad.index].map({True: "territory_id not in territory_dim", False: ""})
    )
    return bad


def active_clients_without_one_current_primary(assignments_fact: pd.DataFrame, client_dim: pd.DataFrame) -> pd.DataFrame:
    """Active clients with zero or several current PRIMARY rows, and how many they have."""
    current = assignments_fact["is_current"] & (assignments_fact["assignment_type"] == "PRIMARY")
    counts = assignments_fact.loc[current, "client_key"].value_counts()
    active = client_dim.loc[client_dim["is_active"], ["client_key"]].copy()
    active["current_primary_rows"] = active["client_key"].map(counts).fillna(0).astype(int)
    return active[active["current_primary_rows"] != 1]


def unbalanced_batches(manifest: pd.DataFrame, raw_clients: pd.DataFrame, quarantined: pd.DataFrame) -> pd.DataFrame:
    """Batches where rows read != rows in raw_clients + rows in the quarantine (counted from the tables)."""
    loaded = raw_clients["source_file"].fillna(API_BATCH).value_counts()
    held = quarantined["source_file"].fillna(API_BATCH).value_counts()
    out = manifest[["batch", "status", "rows_read"]].copy()
    out["in_raw_clients"] = out["batch"].map(loaded).fillna(0).astype(int)
    out["in_quarantine"] = out["batch"].map(held).fillna(0).astype(int)
    unbalanced = out["rows_read"].astype(int) != out["in_raw_clients"] + out["in_quarantine"]
    # rows that claim a batch the manifest does not list are lost too
    unlisted = sorted((set(loaded.index) | set(held.index)) - set(manifest["batch"]))
    extra = pd.DataFrame({"batch": unlisted, "status": "not in manifest", "rows_read": 0})
    if len(extra):
        extra["in_raw_clients"] = extra["batch"].map(loaded).fillna(0).astype(int)
        extra["in_quarantine"] = extra["batch"].map(held).fillna(0).astype(int)
    return pd.concat([out[unbalanced], extra], ignore_index=True)


def client_dim_mismatches(raw_clients: pd.DataFrame, client_dim: pd.DataFrame) -> pd.DataFrame:
    """Keys in raw_clients missing from client_dim, and keys in client_dim that no raw row explains."""
    raw_keys = pd.Index(client_keys(raw_clients["source_system"], raw_clients["client_id"]).unique())
    dim_keys = pd.Index(client_dim["client_key"])
    missing = raw_keys.difference(dim_keys)
    unexplained = dim_keys.difference(raw_keys)
    duplicated = dim_keys[dim_keys.duplicated()].unique()
    return pd.concat(
        [
            pd.DataFrame({"client_key": missing, "problem": "in raw_clients, missing from client_dim"}),
            pd.DataFrame({"client_key": unexplained, "problem": "in client_dim, not in raw_clients"}),
            pd.DataFrame({"client_key": duplicated, "problem": "more than one row in client_dim"}),
        ],
        ignore_index=True,
    )
