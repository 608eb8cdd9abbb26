"""The CRM API snapshot: pages of records into a table, and incremental pulls merged into it.

An incremental pull asks for records with ``updated_at >= `` the newest one we hold (inclusive,
so a record updated in the same second as the last pull is not missed) and upserts them by
client_id: re-pulling the same records changes nothing, which makes the pull idempotent.

Beside the fields the engine places on, every record keeps the CRM's own assignment (owner_email,
territory_id, assignment_version, etag, stored as ``crm_*``): a full or incremental pull (the change
feed's included) brings them with the rest of the record, so the snapshot's etag is the latest one the
engine saw, and the write-back plan diffs against it.
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.ingest.drops import SOURCE_COLUMNS
from crm_territory.logic.ingest.quarantine import parse_timestamps
from crm_territory.schemas import CrmApiClients, columns_of, empty_frame

RECORD_FIELDS = SOURCE_COLUMNS + ["updated_at"]
# The CRM's own assignment of a record (the API's name -> the snapshot's column), kept for the write-back plan.
WRITEBACK_FIELDS = {
    "owner_email": "crm_owner_email",
    "territory_id": "crm_territory_id",
    "assignment_version": "crm_assignment_version",
    "etag": "crm_etag",
}
PULLED_FIELDS = RECORD_FIELDS + list(WRITEBACK_FIELDS.values())


def records_to_frame(pages: list[tuple[int, list[dict]]], pulled_at: pd.Timestamp) -> pd.DataFrame:
    """``pages`` is [(page number, records)]. Unknown fields are ignored; missing ones become missing.

    Values are kept as text, exactly as sent: judging them is the quarantine's job, downstream.
    """
    frames = []
    for page, records in pages:
        if not records:
            continue
        # dtype=object keeps each JSON value as sent: a numeric id stays 100001, never 100001.0
        frame = pd.DataFrame(records, dtype=object).rename(columns=WRITEBACK_FIELDS).reindex(columns=PULLED_FIELDS)
        frame["source_page"] = page
        frames.append(frame)
    if not frames:
        return empty_frame(CrmApiClients)
    out = pd.concat(frames, ignore_index=True)
    for col in PULLED_FIELDS:
        values = out[col]
        out[col] = values.where(values.isna(), values.astype(str)).astype(object)
        out[col] = out[col].where(out[col].notna(), None)
    out["source_page"] = out["source_page"].astype("Int64")
    out["pulled_at"] = pulled_at
    out["pulled_at"] = out["pulled_at"].astype("datetime64[ns, UTC]")
    return out[columns_of(CrmApiClients)]


def newest_update(snapshot: pd.DataFrame | None) -> pd.Timestamp | None:
    """The ``updated_since`` for the next incremental pull (None: pull everything).

    Capped at the time of the previous pull: one record stamped in the future (a skewed clock at the
    source) must not move the watermark past every real update to come.
    """
    if snapshot is None or snapshot.empty:
        return None
    newest = parse_timestamps(snapshot["updated_at"]).max()
    if pd.isna(newest):
        return None
    return min(newest, snapshot["pulled_at"].max())


def latest_per_client(pulled: pd.DataFrame) -> pd.DataFrame:
    """One record per client_id: a record updated while the pull paged through the book comes twice."""
    keyed = pulled["client_id"].notna()
    stamp = parse_timestamps(pulled["updated_at"])
    order = pulled.assign(_stamp=stamp).sort_values(["_stamp", "source_page"], kind="stable", na_position="first")
    deduped = order[keyed.loc[order.index]].drop_duplicates("client_id", keep="last")
    return pd.concat([deduped, order[~keyed.loc[order.index]]]).drop(columns="_stamp").sort_index()


def merge_snapshot(previous: pd.DataFrame | None, pulled: pd.DataFrame) -> pd.DataFrame:
    """Upsert ``pulled`` into ``previous`` by client_id; the pulled version wins.

    Records without a client_id cannot be keyed: those from the new pull replace the old ones
    (they are re-sent on every pull that covers them), so they are neither lost nor multiplied.
    """
    pulled = latest_per_client(pulled)
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
