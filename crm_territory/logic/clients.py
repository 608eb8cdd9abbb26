"""``client_dim``: one row per client, its latest version across batches, canonicalised.

client_key is derived from the source identity, ``<source_system>:<client_id>`` (for example
``csv_drop:1`` or ``crm_api:100001``), so it is the same on every run without a key registry.
Among a client's versions the latest wins: ordered by source_modified_at (the record's
updated_at for the API, the file's modification time for drops), then file name, then row.
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.canonical import canonicalise, normalise_emails
from crm_territory.logic.messages import join_messages
from crm_territory.logic.reference import ReferenceData
from crm_territory.schemas import ClientDim, columns_of


def client_keys(source_system: pd.Series, client_id: pd.Series) -> pd.Series:
    return source_system + ":" + client_id


CARRIED_FORWARD = ("status", "aum_usd", "business_type")  # the optional drop columns


def latest_versions(raw_clients: pd.DataFrame) -> pd.DataFrame:
    """One row per (source_system, client_id): the latest version.

    A drop without a status (or aum_usd, business_type) column says nothing about it: the client keeps
    the last value a source gave (a seed-layout drop must not reactivate a client an earlier drop
    deactivated, nor forget its size). A blank value therefore never clears a known one.
    """
    key = ["source_system", "client_id"]
    ordered = raw_clients.sort_values(
        ["source_modified_at", "source_file", "source_row"], kind="stable", na_position="first"
    )
    several_versions = ordered.duplicated(key, keep=False)
    if several_versions.any():
        versions = ordered[several_versions]
        carried = versions.groupby(key, sort=False)[list(CARRIED_FORWARD)].ffill()
        for column in CARRIED_FORWARD:
            ordered.loc[several_versions, column] = carried[column]
    return ordered.drop_duplicates(key, keep="last")


def build_client_dim(raw_clients: pd.DataFrame, reference: ReferenceData) -> pd.DataFrame:
    latest = latest_versions(raw_clients)
    region = canonicalise(latest["region"], reference.region_aliases)
    segment = canonicalise(latest["segment"], reference.segment_aliases)
    email, invalid_email = normalise_emails(latest["advisor_email"])
    aum = pd.to_numeric(latest["aum_usd"], errors="coerce").astype("float64")
    aum = aum.where(aum >= 0)
    invalid_aum = latest["aum_usd"].notna() & aum.isna()

    # data_issues says, in words, what the engine could not use as sent (why a client is UNASSIGNED, say).
    def quoted(label: str, column: str):
        return lambda rows: latest.loc[rows, column].radd(f"{label} '") + "'"

    issues = join_messages(
        [
            (region.isna() & latest["region"].notna(), quoted("unknown region", "region")),
            (latest["region"].isna(), "no region"),
            (segment.isna() & latest["segment"].notna(), quoted("unknown segment", "segment")),
            (latest["segment"].isna(), "no segment"),
            (invalid_email, "invalid advisor e-mail"),
            (latest["advisor_email"].isna(), "no advisor e-mail"),
            (invalid_aum, quoted("invalid aum_usd", "aum_usd")),
        ],
        latest.index,
    )

    dim = pd.DataFrame(
        {
            "client_key": client_keys(latest["source_system"], latest["client_id"]),
            "client_name": latest["client_name"],
            "region": region,
            "segment": segment,
            "parent_org": latest["parent_org"],
            "primary_advisor_email": email,
            # status comes from the source; a drop without a status column means the client is active
            "is_active": (latest["status"] != "inactive").to_numpy(dtype=bool),
            "aum_usd": aum,
            "business_type": latest["business_type"],
            "source_system": latest["source_system"],
            "source_record_id": latest["source_record_id"],
            "source_modified_at": latest["source_modified_at"],
            "data_issues": issues,
        }
    )
    return dim.sort_values("client_key", kind="stable").reset_index(drop=True)[columns_of(ClientDim)]
