"""Generated CRM exports in two foreign layouts, sharing organisations with the mock CRM's API book.

A Salesforce account report and a HubSpot company export, as those tools write them, built from
``generate_drop`` (so about ``overlap`` of their rows are organisations of the API book
``generate_clients(api_clients, seed)``, spelled and filled in differently, and the rest are new
organisations). Each row keeps its ``entity_id`` in ``Exports.truth`` (never in the files), which
is what the cross-source links entity resolution makes are scored on.

    python -m mock_api.exports data/landing     # writes salesforce/accounts_report.csv, hubspot/companies.csv

The layouts that read them are ``data/sources/salesforce.yaml`` and ``data/sources/hubspot.yaml``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mock_api.generator import BOOK_END, REGION_SPELLINGS, SEGMENT_SPELLINGS, generate_drop

SALESFORCE_COLUMNS = [
    "Account ID", "Account Name", "Billing State/Province", "Industry", "Parent Account ID", "Parent Account",
    "Account Owner Email", "Annual Revenue", "Last Modified Date",
]  # fmt: skip
HUBSPOT_COLUMNS = [
    "Record ID", "Company name", "State/Region", "Industry", "Parent Company", "Company owner", "Annual Revenue",
    "Last Modified Date",
]  # fmt: skip

# Each region's states (code, name): the exports name a state, the layouts map states back to regions.
STATES: dict[str, tuple[tuple[str, str], ...]] = {
    "Northeast": (("NY", "New York"), ("MA", "Massachusetts"), ("PA", "Pennsylvania"), ("NJ", "New Jersey")),
    "Southeast": (("FL", "Florida"), ("GA", "Georgia"), ("NC", "North Carolina"), ("VA", "Virginia")),
    "Midwest": (("IL", "Illinois"), ("OH", "Ohio"), ("MI", "Michigan"), ("MN", "Minnesota")),
    "Southwest": (("TX", "Texas"), ("AZ", "Arizona"), ("NM", "New Mexico"), ("OK", "Oklahoma")),
    "West": (("CA", "California"), ("NV", "Nevada"), ("UT", "Utah"), ("CO", "Colorado")),
    "Northwest": (("WA", "Washington"), ("OR", "Oregon"), ("ID", "Idaho"), ("MT", "Montana")),
}
# An organisation's segment as each tool's industry picklist says it (the layouts map them back).
SALESFORCE_INDUSTRY = {"Institutional": "Banking", "Retail": "Consumer", "Private Wealth": "Private Banking"}
HUBSPOT_INDUSTRY = {
    "Institutional": "FINANCIAL_SERVICES",
    "Retail": "CONSUMER_SERVICES",
    "Private Wealth": "INVESTMENT_MANAGEMENT",
}

_REGION_OF = {spelling.strip().casefold(): canon for canon, spellings in REGION_SPELLINGS.items() for spelling in spellings}
_SEGMENT_OF = {spelling.strip().casefold(): canon for canon, spellings in SEGMENT_SPELLINGS.items() for spelling in spellings}


@dataclass(frozen=True)
class Exports:
    salesforce: pd.DataFrame  # SALESFORCE_COLUMNS, as the report writes them
    hubspot: pd.DataFrame  # HUBSPOT_COLUMNS
    truth: pd.DataFrame  # source_system (salesforce | hubspot), client_id (the export's id), entity_id


def _canonical(values: pd.Series, table: dict[str, str]) -> pd.Series:
    return values.fillna("").str.strip().str.casefold().map(table)


def _pick(canon: pd.Series, table: dict[str, tuple[tuple[str, str], ...]], salt: np.ndarray, part: int) -> pd.Series:
    """A state of each row's region, spread by ``salt``; a row with no known region gets none."""
    out = np.full(len(canon), None, dtype=object)
    for region, states in table.items():
        rows = np.flatnonzero((canon == region).to_numpy())
        out[rows] = np.array([s[part] for s in states], dtype=object)[salt[rows] % len(states)]
    return pd.Series(out, index=canon.index, dtype=object)


def generate_exports(
    n_salesforce: int = 240, n_hubspot: int = 160, *, seed: int = 42, api_clients: int = 2000, overlap: float = 0.5
) -> Exports:
    """The two exports of one world with the API book ``generate_clients(api_clients, seed)``; identical for identical arguments."""
    drop = generate_drop(n_salesforce + n_hubspot, seed, api_clients=api_clients, overlap=overlap)
    n = len(drop)
    salt = np.arange(n, dtype=np.int64) * 2_654_435_761 % 1_000_003  # deterministic spread, no RNG state
    region = _canonical(drop["region"], _REGION_OF)
    segment = _canonical(drop["segment"], _SEGMENT_OF)
    revenue = (salt % 9_000 + 100) * 10_000.0  # 1M - 91M USD
    modified = pd.Series(BOOK_END - (salt % (180 * 24 * 60)).astype("timedelta64[m]"))
    parent = drop["parent_org"]

    sf = slice(0, n_salesforce)
    sf_ids = "001" + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(12) + "AAA"
    parent_ids = (
        "001P"
        + pd.Series(pd.util.hash_pandas_object(parent.fillna(""), index=False).to_numpy() % 10**11).astype(str).str.zfill(11)
        + "AAA"
    )
    salesforce = pd.DataFrame(
        {
            "Account ID": sf_ids,
            "Account Name": drop["client_name"],
            "Billing State/Province": _pick(region, STATES, salt, 0),
            "Industry": segment.map(SALESFORCE_INDUSTRY),
            "Parent Account ID": parent_ids.where(parent.notna().to_numpy(), None),
            "Parent Account": parent,
            "Account Owner Email": drop["advisor_email"],
            "Annual Revenue": pd.Series(revenue).map("${:,.2f}".format),
            "Last Modified Date": modified.dt.strftime("%m/%d/%Y %I:%M %p"),
        }
    ).iloc[sf]
    hs = slice(n_salesforce, n)
    hubspot = pd.DataFrame(
        {
            "Record ID": pd.Series(np.arange(1, n + 1) * 7 + 5_000_000_000).astype(str),
            "Company name": drop["client_name"],
            "State/Region": _pick(region, STATES, salt, 1),
            "Industry": segment.map(HUBSPOT_INDUSTRY),
            "Parent Company": parent,
            "Company owner": drop["advisor_email"],
            "Annual Revenue": pd.Series(revenue).map("{:.0f}".format),
            "Last Modified Date": modified.dt.strftime("%Y-%m-%d %H:%M"),
        }
    ).iloc[hs]
    truth = pd.concat(
        [
            pd.DataFrame(
                {"source_system": "salesforce", "client_id": salesforce["Account ID"], "entity_id": drop["entity_id"].iloc[sf]}
            ),
            pd.DataFrame(
                {"source_system": "hubspot", "client_id": hubspot["Record ID"], "entity_id": drop["entity_id"].iloc[hs]}
            ),
        ],
        ignore_index=True,
    ).astype(object)
    return Exports(salesforce.reset_index(drop=True), hubspot.reset_index(drop=True), truth)


def write_exports(landing: Path, exports: Exports | None = None) -> list[Path]:
    """The Salesforce report as Excel on Windows saves it (cp1252) and the HubSpot export (UTF-8), in their folders."""
    exports = exports or generate_exports()
    sf_path = landing / "salesforce" / "accounts_report.csv"
    hs_path = landing / "hubspot" / "companies.csv"
    for path in (sf_path, hs_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    # names the cp1252 code page cannot hold would not survive a real cp1252 export either: replaced, like Excel
    sf_path.write_bytes(exports.salesforce.to_csv(index=False, lineterminator="\r\n").encode("cp1252", errors="replace"))
    hs_path.write_text(exports.hubspot.to_csv(index=False), encoding="utf-8")
    return [sf_path, hs_path]


if __name__ == "__main__":
    for written in write_exports(Path(sys.argv[1] if len(sys.argv) > 1 else "data/landing")):
        print(written)


@dataclass(frozen=True)
class LinkQuality:
    predicted: int  # cross-source links entity resolution made (pairs of records in one client)
    true: int  # cross-source pairs that are one organisation
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.true if self.true else 1.0


def cross_source_link_quality(
    xref: pd.DataFrame, truth: pd.DataFrame, exports: tuple[str, ...] = ("salesforce", "hubspot")
) -> LinkQuality:
    """Precision and recall of the links between records of different sources that involve an export.

    ``xref``: client_xref (source_system, source_record_id, client_key). ``truth``: record (``<source_system>:<id>``)
    and entity_id for the records whose organisation is known (the API book's and the exports'); any other record
    (the seed's, Maven's) is taken to be an organisation of its own.
    """
    records = pd.DataFrame(
        {
            "record": xref["source_system"] + ":" + xref["source_record_id"],
            "source": xref["source_system"],
            "client": xref["client_key"],
        }
    )
    entity = records["record"].map(truth.set_index("record")["entity_id"])
    records["entity"] = entity.fillna("own:" + records["record"])

    def links(by: str) -> pd.DataFrame:
        pairs = records.merge(records, on=by, suffixes=("_a", "_b"))
        keep = (pairs["record_a"] < pairs["record_b"]) & (pairs["source_a"] != pairs["source_b"])
        keep &= pairs["source_a"].isin(exports) | pairs["source_b"].isin(exports)
        return pairs.loc[keep, ["record_a", "record_b"]]

    predicted, true = links("client"), links("entity")
    correct = len(predicted.merge(true, on=["record_a", "record_b"]))
    return LinkQuality(predicted=len(predicted), true=len(true), correct=correct)
