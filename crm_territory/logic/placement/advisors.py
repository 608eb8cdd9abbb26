"""The advisor roster: who can own clients where, and how many.

The CRM describes coverage in its own words (regions and segments); the engine speaks territory
ids. ``build_advisor_dim`` translates one into the other through the territory registry, so an
advisor covering Northeast x Institutional serves NOR_INS whatever that id's history.
Lists are stored as ';'-joined text so the table fits CSV and warehouse columns alike.
"""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.reference.canonical import canonicalise, normalise_emails
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.schemas import AdvisorDim, CrmApiAdvisors, conform, empty_frame

LIST_SEPARATOR = ";"


def advisors_to_frame(records: list[dict], pulled_at: pd.Timestamp) -> pd.DataFrame:
    """``/advisors`` records as a table, values kept as sent (lists joined with ';')."""
    if not records:
        return empty_frame(CrmApiAdvisors)
    frame = pd.DataFrame(records, dtype=object).reindex(
        columns=["advisor_email", "advisor_name", "regions", "segments", "capacity", "active"]
    )
    for col in ("regions", "segments"):
        frame[col] = frame[col].map(
            lambda v: LIST_SEPARATOR.join(map(str, v)) if isinstance(v, list) else v
        )  # a few dozen advisors
    frame["capacity"] = pd.to_numeric(frame["capacity"], errors="coerce").astype("Int64")
    frame["active"] = frame["active"].map({True: True, False: False}).fillna(False).astype(bool)
    frame["pulled_at"] = pulled_at
    return conform(frame, CrmApiAdvisors)


def split_list(values: pd.Series) -> pd.Series:
    """';'-joined text back into lists (empty list for missing)."""
    return values.fillna("").map(lambda text: [part for part in text.split(LIST_SEPARATOR) if part])


def build_advisor_dim(roster: pd.DataFrame | None, territory_dim: pd.DataFrame, reference: ReferenceData) -> pd.DataFrame:
    """One row per advisor e-mail: the territories served (ids), capacity, active.

    Advisors without a valid e-mail cannot own clients and are dropped here with the count logged
    by the caller; a capacity that is missing or negative counts as 0 (the advisor keeps no one new).
    """
    if roster is None or roster.empty:
        return empty_frame(AdvisorDim)
    email, _ = normalise_emails(roster["advisor_email"])
    advisors = roster.assign(advisor_email=email).dropna(subset=["advisor_email"]).drop_duplicates("advisor_email", keep="last")
    pairs = (
        advisors[["advisor_email", "regions", "segments"]]
        .assign(region=lambda f: split_list(f["regions"]), segment=lambda f: split_list(f["segments"]))
        .explode("region")
        .explode("segment")
        .dropna(subset=["region", "segment"])
    )
    pairs["region"] = canonicalise(pairs["region"].astype(object), reference.region_aliases)
    pairs["segment"] = canonicalise(pairs["segment"].astype(object), reference.segment_aliases)
    served = pairs.merge(territory_dim[["territory_id", "region", "segment"]], on=["region", "segment"], how="inner")
    territories = served.groupby("advisor_email")["territory_id"].agg(lambda ids: LIST_SEPARATOR.join(sorted(set(ids))))
    capacity = advisors["capacity"].astype("Int64").fillna(0).clip(lower=0)
    dim = pd.DataFrame(
        {
            "advisor_email": advisors["advisor_email"],
            "advisor_name": advisors["advisor_name"],
            "territories": advisors["advisor_email"].map(territories),
            "capacity": capacity,
            "active": advisors["active"].astype(bool),
        }
    )
    return conform(dim.sort_values("advisor_email"), AdvisorDim)
