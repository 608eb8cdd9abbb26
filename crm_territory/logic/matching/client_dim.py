"""Client records and ``client_dim``: one golden row per organisation.

A *record* is one source's view of a client, named by its record key ``<source_system>:<client_id>``
(``csv_drop:1``, ``crm_api:100001``). Its latest version wins among the versions raw_clients holds:
ordered by source_modified_at (the record's updated_at for the API, the file's modification time
for drops), then file name, then row. ``client_records`` canonicalises those versions; entity
resolution (``crm_territory.logic.matching.resolve``) groups records of one organisation under one
client_key; ``build_client_dim`` merges each group into its golden row (``survivorship``).
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.matching.fields import normalise_fields
from crm_territory.logic.matching.survivorship import golden_records
from crm_territory.logic.messages import join_messages
from crm_territory.logic.reference.canonical import canonicalise, normalise_emails
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.schemas import ClientDim, columns_of


def record_keys(source_system: pd.Series, client_id: pd.Series) -> pd.Series:
    return source_system + ":" + client_id


CARRIED_FORWARD = ("status", "aum_usd", "business_type")  # the optional drop columns


def latest_versions(raw_clients: pd.DataFrame) -> pd.DataFrame:
    """One row per (source_system, client_id): the latest version.

    A drop without a status (or aum_usd, business_type) column says nothing about it: the client keeps
    the last value a source gave (a seed-layout drop must not reactivate a client an earlier drop
    deactivated, nor forget its size). A blank value therefore never clears a known one.
    """
    key = ["source_system", "client_id"]
    several_versions = raw_clients.duplicated(key, keep=False)
    if not several_versions.any():
        return raw_clients
    # only the records with several versions are sorted: most of a book has one, and sorting a million rows on a
    # text column costs seconds (the order of the rows returned is not part of the result: callers key by record)
    ordered = raw_clients[several_versions].sort_values(
        ["source_modified_at", "source_file", "source_row"], kind="stable", na_position="first"
    )
    carried = ordered.groupby(key, sort=False)[list(CARRIED_FORWARD)].ffill()
    for column in CARRIED_FORWARD:
        ordered[column] = carried[column]
    return pd.concat([raw_clients[~several_versions], ordered.drop_duplicates(key, keep="last")])


def client_records(raw_clients: pd.DataFrame, reference: ReferenceData) -> pd.DataFrame:
    """One row per source record (its latest version), canonicalised, sorted by record key.

    Canonical values sit beside what the source sent (``region_as_sent`` ...), so that a golden
    record can say which spelling it could not use. The optional fields matching compares (tax_id,
    date_of_birth, postal_code, domain, phone) come last, normalised (``fields.normalise_fields``).
    """
    latest = latest_versions(raw_clients)
    email, _ = normalise_emails(latest["advisor_email"])
    aum = pd.to_numeric(latest["aum_usd"], errors="coerce").astype("float64")
    records = pd.DataFrame(
        {
            "record_key": record_keys(latest["source_system"], latest["client_id"]),
            "client_name": latest["client_name"],
            "region": canonicalise(latest["region"], reference.region_aliases),
            "region_as_sent": latest["region"],
            "segment": canonicalise(latest["segment"], reference.segment_aliases),
            "segment_as_sent": latest["segment"],
            "parent_org": latest["parent_org"],
            "primary_advisor_email": email,
            "advisor_email_as_sent": latest["advisor_email"],
            "status": latest["status"],
            "aum_usd": aum.where(aum >= 0),
            "aum_as_sent": latest["aum_usd"],
            "business_type": latest["business_type"],
            "source_system": latest["source_system"],
            "source_record_id": latest["source_record_id"],
            "source_modified_at": latest["source_modified_at"],
        }
    )
    records = pd.concat([records, normalise_fields(latest)], axis=1)
    return records.sort_values("record_key", kind="stable").reset_index(drop=True)


def build_client_dim(
    raw_clients: pd.DataFrame, reference: ReferenceData, client_xref: pd.DataFrame | None = None
) -> pd.DataFrame:
    """client_dim from raw_clients; ``client_xref`` (record -> client_key) groups records, else each record is a client."""
    return client_dim_from_records(client_records(raw_clients, reference), client_xref)


def client_dim_from_records(records: pd.DataFrame, client_xref: pd.DataFrame | None = None) -> pd.DataFrame:
    if client_xref is None:
        keyed = records.assign(client_key=records["record_key"])
    else:
        xref_keys = record_keys(client_xref["source_system"], client_xref["source_record_id"])
        key_of = pd.Series(client_xref["client_key"].to_numpy(), index=xref_keys.to_numpy())
        keyed = records.assign(client_key=records["record_key"].map(key_of))
        unmapped = keyed["client_key"].isna()
        if unmapped.any():
            raise ValueError(
                f"{int(unmapped.sum())} record(s) have no client_key in client_xref (first: {keyed.loc[unmapped, 'record_key'].iloc[0]}); "
                "re-materialize client_xref from the same raw_clients"
            )
    golden = golden_records(keyed)

    # data_issues says, in words, what the engine could not use as sent (why a client is UNASSIGNED, say).
    def quoted(label: str, column: str):
        return lambda rows: golden.loc[rows, column].radd(f"{label} '") + "'"

    issues = join_messages(
        [
            (golden["region"].isna() & golden["region_as_sent"].notna(), quoted("unknown region", "region_as_sent")),
            (golden["region_as_sent"].isna(), "no region"),
            (golden["segment"].isna() & golden["segment_as_sent"].notna(), quoted("unknown segment", "segment_as_sent")),
            (golden["segment_as_sent"].isna(), "no segment"),
            (golden["primary_advisor_email"].isna() & golden["advisor_email_as_sent"].notna(), "invalid advisor e-mail"),
            (golden["advisor_email_as_sent"].isna(), "no advisor e-mail"),
            (golden["aum_usd"].isna() & golden["aum_as_sent"].notna(), quoted("invalid aum_usd", "aum_as_sent")),
        ],
        golden.index,
    )
    # status comes from the source; a record without one (a seed-layout drop) means the client is active
    dim = golden.assign(is_active=(golden["status"] != "inactive").to_numpy(dtype=bool), data_issues=issues)
    return dim[columns_of(ClientDim)]
