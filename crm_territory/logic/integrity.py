"""Integrity rules across tables. Each returns the violating rows (empty = the rule holds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.ingest.raw_clients import API_BATCH
from crm_territory.logic.matching.client_dim import record_keys
from crm_territory.logic.matching.clustering import components


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


def records_not_in_one_client(raw_clients: pd.DataFrame, client_xref: pd.DataFrame) -> pd.DataFrame:
    """Source records of raw_clients missing from client_xref or in it more than once, and xref rows no raw row explains."""
    raw = pd.Index(record_keys(raw_clients["source_system"], raw_clients["client_id"]).unique())
    xref = pd.Index(record_keys(client_xref["source_system"], client_xref["source_record_id"]))
    return pd.concat(
        [
            pd.DataFrame({"record": raw.difference(xref), "problem": "in raw_clients, in no client of client_xref"}),
            pd.DataFrame({"record": xref[xref.duplicated()].unique(), "problem": "in more than one row of client_xref"}),
            pd.DataFrame({"record": xref.difference(raw), "problem": "in client_xref, not in raw_clients"}),
        ],
        ignore_index=True,
    )


def client_keys_not_one_cluster(
    client_xref: pd.DataFrame, client_matches: pd.DataFrame, retirements: pd.DataFrame
) -> pd.DataFrame:
    """Client keys that do not name exactly one cluster, rebuilt from the merged pairs of client_matches.

    A cluster is a connected group of records joined by merged pairs; each must carry one client_key,
    and each client_key must be one such group (two groups under one key are two clients sharing a
    key). A retired key must not be in use.
    """
    records = record_keys(client_xref["source_system"], client_xref["source_record_id"])
    position = pd.Series(np.arange(len(records)), index=records.to_numpy())
    merged = client_matches[client_matches["merged"]]
    a, b = merged["record_a"].map(position), merged["record_b"].map(position)
    known = a.notna() & b.notna()
    cluster = components(len(records), a[known].to_numpy(dtype=np.int64), b[known].to_numpy(dtype=np.int64))
    pairs = pd.DataFrame({"client_key": client_xref["client_key"].to_numpy(), "cluster": cluster}).drop_duplicates()
    keys_per_cluster = pairs.groupby("cluster")["client_key"].transform("size")
    clusters_per_key = pairs.groupby("client_key")["cluster"].transform("size")
    in_use = pd.Index(client_xref["client_key"].unique()).intersection(pd.Index(retirements["retired_client_key"]))
    return pd.concat(
        [
            pairs.loc[clusters_per_key > 1, ["client_key"]]
            .drop_duplicates()
            .assign(problem="one client_key on several clusters"),
            pairs.loc[keys_per_cluster > 1, ["client_key"]]
            .drop_duplicates()
            .assign(problem="one cluster under several client_keys"),
            pd.DataFrame({"client_key": in_use, "problem": "retired client_key still in use"}),
            pd.DataFrame(
                {
                    "client_key": None,
                    "record": pd.concat([merged.loc[a.isna(), "record_a"], merged.loc[b.isna(), "record_b"]]),
                    "problem": "client_matches names a record client_xref lacks",
                }
            ),
        ],
        ignore_index=True,
    )


def client_dim_mismatches(client_xref: pd.DataFrame, client_dim: pd.DataFrame) -> pd.DataFrame:
    """Client keys of client_xref missing from client_dim, rows of client_dim no xref key explains, and wrong record counts."""
    xref_counts = client_xref["client_key"].value_counts()
    dim_keys = pd.Index(client_dim["client_key"])
    missing = xref_counts.index.difference(dim_keys)
    unexplained = dim_keys.difference(xref_counts.index)
    duplicated = dim_keys[dim_keys.duplicated()].unique()
    counted = client_dim.set_index("client_key")["source_record_count"]
    counted = counted[~counted.index.duplicated()]
    wrong = counted.index[counted.ne(xref_counts.reindex(counted.index)) & counted.index.isin(xref_counts.index)]
    return pd.concat(
        [
            pd.DataFrame({"client_key": missing, "problem": "in client_xref, missing from client_dim"}),
            pd.DataFrame({"client_key": unexplained, "problem": "in client_dim, not in client_xref"}),
            pd.DataFrame({"client_key": duplicated, "problem": "more than one row in client_dim"}),
            pd.DataFrame({"client_key": wrong, "problem": "source_record_count differs from the records client_xref lists"}),
        ],
        ignore_index=True,
    )
