"""The CRM API snapshot: pages of records into a table, and incremental pulls merged into it.

An incremental pull asks for records with ``updated_at >= `` the newest one we hold (inclusive,
so a record updated in the same second as the last pull is not missed) and upserts them by
client_id: re-pulling the same records changes nothing, which makes the pull idempotent.
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.drops import SOURCE_COLUMNS
from crm_territory.logic.quarantine import parse_timestamps
from crm_territory.schemas import CrmApiClients, columns_of, empty_frame

RECORD_FIELDS = SOURCE_COLUMNS + ["updated_at"]


def records_to_frame(pages: list[tuple[int, list[dict]]], pulled_at: pd.Timestamp) -> pd.DataFrame:
    """``pages`` is [(page number, records)]. Unknown fields are ignored; missing ones become missing.

    Values are kept as text, exactly as sent: judging them is the quarantine's job, downstream.
    """
    frames = []
    for page, records in pages:
        if not records:
            continue
        frame = pd.DataFrame.from_records(records)
        frame = frame.reindex(columns=RECORD_FIELDS)
        frame["source_page"] = page
        frames.append(frame)
    if not frames:
        return empty_frame(CrmApiClients)
    out = pd.concat(frames, ignore_index=True)
    for col in RECORD_FIELDS:
        values = out[col]
        out[col] = values.where(values.isna(), values.astype(str)).astype(object)
        out[col] = out[col].where(out[col].notna(), None)
    out["source_page"] = out["source_page"].astype("Int64")
    out["pulled_at"] = pulled_at
    out["pulled_at"] = out["pulled_at"].astype("datetime64[ns, UTC]")
    return out[columns_of(CrmApiClients)]


def newest_update(snapshot: pd.DataFrame | None) -> pd.Timestamp | None:
    """The ``updated_since`` for the next incremental pull (None: pull everything)."""
    if snapshot is None or snapshot.empty:
        return None
    newest = parse_timestamps(snapshot["updated_at"]).max()
    return None if pd.isna(newest) else newest


def merge_snapshot(previous: pd.DataFrame | None, pulled: pd.DataFrame) -> pd.DataFrame:
    """Upsert ``pulled`` into ``previous`` by client_id; the pulled version wins.

    Records without a client_id cannot be keyed: those from the new pull replace the old ones
    (they are re-sent on every pull that covers them), so they are neither lost nor multiplied.
    """
    if previous is None or previous.empty:
        return pulled.reset_index(drop=True)
    keep_previous = previous[previous["client_id"].notna() & ~previous["client_id"].isin(pulled["client_id"])]
    if pulled["client_id"].isna().any() or previous["client_id"].isna().any():
        unkeyed_old = previous[previous["client_id"].isna()]
        unkeyed_new = pulled[pulled["client_id"].isna()]
        # keep the old unkeyed records the new pull did not re-send (same content = same record)
        fields = [c for c in RECORD_FIELDS if c != "client_id"]
        old_keys = pd.MultiIndex.from_frame(unkeyed_old[fields].fillna(""))
        resent = old_keys.isin(pd.MultiIndex.from_frame(unkeyed_new[fields].fillna("")))
        keep_previous = pd.concat([keep_previous, unkeyed_old[~resent]])
    merged = pd.concat([keep_previous, pulled], ignore_index=True)
    return merged[columns_of(CrmApiClients)].astype(empty_frame(CrmApiClients).dtypes.to_dict())
