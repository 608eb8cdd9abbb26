"""Survivorship: the golden record of a cluster, field by field, from the source records it holds.

For each field the records of a cluster are ranked, and the first one gives the value:

1. a usable value beats an unusable one, which beats none (a region the alias table knows beats
   one it does not, which beats a blank): a blank never erases what another source knows;
2. then the source the field trusts most (``SOURCE_PRIORITY``: the CRM is the system of record for
   names, regions, segments, parents and owners; drops only fill its gaps);
3. then the most recently updated record (source_modified_at);
4. then the record key, so that ties are broken the same way on every run.

Status and size (aum_usd) trust no source over another: the most recent record says whether the
organisation is still a client and how big it is. Columns that describe one value travel together
(the canonical region and the spelling it came from), so a golden record never mixes two records'
halves of one value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FieldRule:
    columns: tuple[str, ...]  # the columns that travel together; the first is the value ranked on
    usable: str | None  # column whose presence marks a usable value (None: the value's own presence)
    sources: tuple[str, ...]  # source systems in order of trust; () = none preferred, the most recent wins


CRM_FIRST = ("crm_api", "csv_drop")
FIELD_RULES: dict[str, FieldRule] = {
    "client_name": FieldRule(("client_name",), None, CRM_FIRST),
    "region": FieldRule(("region_as_sent", "region"), "region", CRM_FIRST),
    "segment": FieldRule(("segment_as_sent", "segment"), "segment", CRM_FIRST),
    "parent_org": FieldRule(("parent_org",), None, CRM_FIRST),
    "advisor": FieldRule(("advisor_email_as_sent", "primary_advisor_email"), "primary_advisor_email", CRM_FIRST),
    "business_type": FieldRule(("business_type",), None, CRM_FIRST),
    "status": FieldRule(("status",), None, ()),
    "aum_usd": FieldRule(("aum_as_sent", "aum_usd"), "aum_usd", ()),
    # the source columns name the record the golden row was last updated from
    "source": FieldRule(("source_system", "source_record_id", "source_modified_at"), "source_system", ()),
}


def golden_records(records: pd.DataFrame) -> pd.DataFrame:
    """One row per client_key, sorted by it: each field from its winning record; ``source_record_count`` = records in the cluster.

    ``records`` has a client_key and every column the field rules name, one row per source record.
    Built by picking, per field, the position of the winning record and taking the column values at
    those positions: no copy of the record frame, whatever its size.
    """
    client, clients = pd.factorize(records["client_key"], sort=True)
    counts = np.bincount(client, minlength=len(clients))
    # a client of one record: that record wins every field
    first_record = np.full(len(clients), -1, dtype=np.int64)
    first_record[client[::-1]] = np.arange(len(records))[::-1]
    several = np.flatnonzero(counts[client] > 1)
    out = {"client_key": np.asarray(clients, dtype=object)}
    if len(several):
        multi = records.iloc[several]
        record = pd.factorize(multi["record_key"], sort=True)[0]
        newest_first = -pd.DatetimeIndex(pd.to_datetime(multi["source_modified_at"], utc=True)).asi8
    for rule in FIELD_RULES.values():
        winner = first_record.copy()
        if len(several):
            picked = several[_winners(multi, rule, client[several], record, newest_first)]
            winner[client[picked]] = picked
        for column in rule.columns:
            values = records[column]
            out[column] = values.iloc[winner].reset_index(drop=True)
    golden = pd.DataFrame(out)
    golden["source_record_count"] = pd.array(counts, dtype="Int64")
    return golden


def _all_columns() -> list[str]:
    return list(dict.fromkeys(c for rule in FIELD_RULES.values() for c in rule.columns))


def _winners(
    records: pd.DataFrame, rule: FieldRule, client: np.ndarray, record: np.ndarray, newest_first: np.ndarray
) -> np.ndarray:
    """Position (in ``records``) of each client's winning record for this field, in client-code order."""
    value = records[rule.columns[0]]
    usable = records[rule.usable] if rule.usable else value
    quality = np.where(usable.notna(), 0, np.where(value.notna(), 1, 2))
    trust = (
        records["source_system"].map({s: i for i, s in enumerate(rule.sources)}).fillna(len(rule.sources)).to_numpy()
        if rule.sources
        else np.zeros(len(records))
    )
    order = np.lexsort((record, newest_first, trust, quality, client))  # the last key sorts first
    first_of_client = np.r_[True, client[order][1:] != client[order][:-1]]
    return order[first_of_client]
