"""The write-back plan: which CRM records must change owner or territory to hold the current PRIMARY assignments."""

from __future__ import annotations

import hashlib

import pandas as pd

from crm_territory.schemas import CrmWritebackPlan, columns_of, empty_frame

CRM_SOURCE = "crm_api"
CRM_STATE_COLUMNS = ["crm_client_id", "owner_email", "territory_id", "etag"]


def _crm_state(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with client_id, owner_email, territory_id, etag -> the CRM state (see ``crm_state_from_records``)."""
    frame = frame.rename(columns={"client_id": "crm_client_id"})
    frame = frame[frame["crm_client_id"].notna() & frame["etag"].notna()]
    out = frame.astype(object).where(frame.notna(), None)
    out["crm_client_id"] = out["crm_client_id"].astype(str)
    return out.drop_duplicates("crm_client_id", keep="last").reset_index(drop=True)[CRM_STATE_COLUMNS]


def crm_state_from_records(records: list[dict]) -> pd.DataFrame:
    """The CRM's assignment per record (crm_client_id, owner_email, territory_id, etag) from ``/clients`` records.

    Records without an id or an etag cannot be written conditionally and are left out.
    """
    return _crm_state(pd.DataFrame.from_records(records, columns=["client_id", "owner_email", "territory_id", "etag"]))


def crm_state_from_snapshot(snapshot: pd.DataFrame) -> pd.DataFrame:
    """The CRM's assignment per record as of the latest pull, from the ``crm_api_clients`` snapshot.

    Records without a client_id or an etag (pulled before the snapshot kept the write-back fields) cannot be
    written conditionally and are left out: ``records_without_etag`` counts them.
    """
    columns = {"client_id": "client_id", "crm_owner_email": "owner_email", "crm_territory_id": "territory_id", "crm_etag": "etag"}
    return _crm_state(snapshot[list(columns)].rename(columns=columns))


def records_without_etag(snapshot: pd.DataFrame) -> int:
    """Keyed snapshot records the plan cannot use: no etag yet (pulled before the write-back fields were kept)."""
    return int((snapshot["client_id"].notna() & snapshot["crm_etag"].isna()).sum())


def _text(series: pd.Series) -> pd.Series:
    """Trimmed text, empty strings as missing (None)."""
    text = series.astype("string").str.strip()
    text = text.mask(text == "")
    return text.astype(object).where(text.notna(), None)


def plan_id_of(rows: pd.DataFrame) -> str:
    """16 hex characters from the rows that define what would be sent: the same plan, the same id."""
    parts = rows[["crm_client_id", "owner_after", "territory_after", "etag", "status"]].fillna("\x00").astype(str)
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(parts, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def build_plan(
    crm_state: pd.DataFrame,
    assignments_fact: pd.DataFrame,
    client_xref: pd.DataFrame,
    advisor_dim: pd.DataFrame,
    planned_at: pd.Timestamp,
) -> pd.DataFrame:
    """One row per CRM record whose owner or territory differs from its client's current PRIMARY row (empty: nothing).

    ``crm_state``: crm_client_id, owner_email, territory_id, etag as the CRM holds them now. A client's CRM records
    are its ``crm_api`` rows of ``client_xref``; CRM records the engine does not hold (quarantined, unlinked)
    are left alone. A row whose advisor is not a known, active advisor of ``advisor_dim`` (or that has none) is
    ``refused``: listed, never sent. Owners compare case-insensitively; rows are ordered by crm_client_id.
    """
    primary = assignments_fact[(assignments_fact["assignment_type"] == "PRIMARY") & assignments_fact["is_current"].astype(bool)]
    primary = primary[["client_key", "territory_id", "primary_advisor_email", "assigned_by", "advisor_reason"]]
    xref = client_xref.loc[client_xref["source_system"] == CRM_SOURCE, ["source_record_id", "client_key"]]
    xref = xref.rename(columns={"source_record_id": "crm_client_id"})
    wanted = xref.merge(primary, on="client_key", how="inner").rename(
        columns={"territory_id": "territory_after", "primary_advisor_email": "owner_after"}
    )
    state = crm_state.rename(columns={"owner_email": "owner_before", "territory_id": "territory_before"})
    rows = wanted.merge(state, on="crm_client_id", how="inner")
    if rows.empty:
        return empty_frame(CrmWritebackPlan)

    owner_after = _text(_text(rows["owner_after"]).str.lower())
    owner_before = _text(rows["owner_before"])
    territory_before = _text(rows["territory_before"])
    owner_changes = owner_after.fillna("\x00") != owner_before.str.lower().fillna("\x00")
    territory_changes = rows["territory_after"].astype(str) != territory_before.fillna("\x00")
    rows = rows.assign(owner_after=owner_after, owner_before=owner_before, territory_before=territory_before)
    changed = owner_changes | territory_changes
    rows, owner_changes, territory_changes = rows[changed], owner_changes[changed], territory_changes[changed]
    if rows.empty:
        return empty_frame(CrmWritebackPlan)

    change = pd.Series("owner and territory", index=rows.index, dtype=object)
    change[owner_changes & ~territory_changes] = "owner"
    change[~owner_changes & territory_changes] = "territory"

    active = set(advisor_dim.loc[advisor_dim["active"].astype(bool), "advisor_email"].str.lower())
    known = set(advisor_dim["advisor_email"].str.lower())
    owner = rows["owner_after"]
    reason = pd.Series(None, index=rows.index, dtype=object)
    reason[owner.isna()] = "no advisor placed for the client (" + rows["advisor_reason"].fillna("no reason").astype(str) + ")"
    reason[owner.notna() & ~owner.isin(known)] = "advisor " + owner + " is not in advisor_dim"
    reason[owner.notna() & owner.isin(known) & ~owner.isin(active)] = "advisor " + owner + " is not active"

    plan = pd.DataFrame(
        {
            "plan_id": "",
            "crm_client_id": rows["crm_client_id"].astype(str),
            "client_key": rows["client_key"],
            "owner_before": rows["owner_before"],
            "owner_after": rows["owner_after"],
            "territory_before": rows["territory_before"],
            "territory_after": rows["territory_after"].astype(str),
            "change": change,
            "assigned_by": rows["assigned_by"],
            "advisor_reason": rows["advisor_reason"],
            "etag": rows["etag"].astype(str),
            "status": reason.isna().map({True: "send", False: "refused"}),
            "refusal_reason": reason,
            "planned_at": planned_at,
        }
    )
    plan = plan.sort_values("crm_client_id", kind="stable").reset_index(drop=True)
    plan["plan_id"] = plan_id_of(plan)
    plan = plan[columns_of(CrmWritebackPlan)]
    for column in ("owner_before", "owner_after", "territory_before", "advisor_reason", "refusal_reason"):
        plan[column] = plan[column].astype(object).where(plan[column].notna(), None)
    plan["planned_at"] = pd.to_datetime(plan["planned_at"], utc=True).astype("datetime64[ns, UTC]")
    return plan


def plan_summary(plan: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Counts for the UI: per territory (after), per advisor (after), refusals."""
    sent = plan[plan["status"] == "send"]
    return {
        "per_territory": sent.groupby("territory_after").size().rename("records").sort_values(ascending=False).reset_index(),
        "per_advisor": sent.groupby("owner_after").size().rename("records").sort_values(ascending=False).reset_index(),
        "refused": plan.loc[plan["status"] == "refused", ["crm_client_id", "client_key", "owner_after", "refusal_reason"]],
    }
