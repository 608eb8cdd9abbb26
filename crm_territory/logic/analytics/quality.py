"""The Data quality page: quarantine, unknown spellings, possible duplicates to review, rejected files."""

from __future__ import annotations

import numpy as np
import pandas as pd

UNKNOWN_SPELLING = r"unknown (?P<field>region|segment) '(?P<spelling>[^']*)'"


def quarantine_summary(quarantined: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows per Source, File (the CRM API has none) and Reason, with the latest time they were read."""
    frame = pd.DataFrame(
        {
            "Source": quarantined["source_system"],
            "File": quarantined["source_file"].fillna("(CRM API)"),
            "Reason": quarantined["reason"],
            "read": quarantined["ingested_at"],
        }
    )
    out = frame.groupby(["Source", "File", "Reason"]).agg(Rows=("read", "size"), **{"Last read": ("read", "max")})
    return out.reset_index().sort_values(["Rows", "Source", "File"], ascending=[False, True, True], ignore_index=True)


def unknown_spellings(client_dim: pd.DataFrame) -> pd.DataFrame:
    """Region and segment spellings no alias maps, from client_dim.data_issues, with the clients that carry them.

    Columns: Field (region or segment), Spelling, Clients, Alias file (where a line for it goes), Line to add (with the
    canonical value left for the reader to write).
    """
    found = client_dim["data_issues"].dropna().str.extractall(UNKNOWN_SPELLING)
    if found.empty:
        return pd.DataFrame(columns=["Field", "Spelling", "Clients", "Alias file", "Line to add"])
    counts = found.groupby(["field", "spelling"]).size().rename("Clients").reset_index()
    files = counts["field"].map({"region": "reference/region_aliases.csv", "segment": "reference/segment_aliases.csv"})
    return pd.DataFrame(
        {
            "Field": counts["field"].to_numpy(),
            "Spelling": counts["spelling"].to_numpy(),
            "Clients": counts["Clients"].to_numpy(dtype=np.int64),
            "Alias file": files.to_numpy(),
            "Line to add": (_csv_field(counts["spelling"]) + ",<canonical " + counts["field"] + ">").to_numpy(),
        }
    ).sort_values(["Clients", "Field", "Spelling"], ascending=[False, True, True], ignore_index=True)


def possible_duplicates(matches: pd.DataFrame) -> pd.DataFrame:
    """The pairs the matcher left for a human (decision ``possible``), nearest the match threshold first.

    Columns: Record A, Name A, Record B, Name B, Score, Names (word comparison), Region, Parent organisation,
    Same link if merged (must_link line) and Keep apart (cannot_link line): the lines to add to
    data/matching/decisions.csv (record_a,record_b,decision,note).
    """
    possible = matches[matches["decision"] == "possible"].sort_values(["score", "record_a"], ascending=[False, True])
    a, b = possible["record_a"], possible["record_b"]
    return pd.DataFrame(
        {
            "Record A": a.to_numpy(),
            "Name A": possible["client_name_a"].to_numpy(),
            "Record B": b.to_numpy(),
            "Name B": possible["client_name_b"].to_numpy(),
            "Score": possible["score"].astype(float).to_numpy(),
            "Names": possible["name_difference"].to_numpy(),
            "Region": possible["region_agreement"].to_numpy(),
            "Parent organisation": possible["parent_org_agreement"].to_numpy(),
            "Same client (line to add)": (_csv_field(a) + "," + _csv_field(b) + ",must_link,").to_numpy(),
            "Different clients (line to add)": (_csv_field(a) + "," + _csv_field(b) + ",cannot_link,").to_numpy(),
        }
    )


def file_problems(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files the last run rejected or deferred, with why: Source, File, Status, Size (bytes), Modified, Why."""
    bad = manifest[manifest["status"].isin(["rejected", "deferred"])]
    return pd.DataFrame(
        {
            "Source": bad["source_system"].to_numpy(),
            "File": bad["batch"].to_numpy(),
            "Status": bad["status"].to_numpy(),
            "Size (bytes)": bad["size_bytes"].to_numpy(),
            "Modified": bad["modified_at"].to_numpy(),
            "Why": bad["message"].to_numpy(),
        }
    )


def ingest_totals(manifest: pd.DataFrame) -> pd.DataFrame:
    """Per batch of the last run: Source, File, Status, Rows read, Rows loaded, Rows quarantined."""
    return pd.DataFrame(
        {
            "Source": manifest["source_system"].to_numpy(),
            "File": manifest["batch"].to_numpy(),
            "Status": manifest["status"].to_numpy(),
            "Rows read": manifest["rows_read"].to_numpy(dtype=np.int64),
            "Rows loaded": manifest["rows_loaded"].to_numpy(dtype=np.int64),
            "Rows quarantined": manifest["rows_quarantined"].to_numpy(dtype=np.int64),
        }
    )


def _csv_field(values: pd.Series) -> pd.Series:
    """Values as CSV fields: quoted (quotes doubled) when they hold a comma, a quote or a newline."""
    text = values.astype(str)
    needs = text.str.contains(r'[,"\n]', regex=True)
    return text.where(~needs, '"' + text.str.replace('"', '""', regex=False) + '"')
