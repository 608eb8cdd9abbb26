"""raw_clients frames for matching tests: hand-written records, and a generated labelled book as ingestion delivers it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.ingest.api_snapshot import records_to_frame
from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from mock_api.generator import LabelledBook, labelled_book

# the columns a hand-written record may leave out, and what they then hold
RAW_DEFAULTS = {
    "source_system": "csv_drop", "region": None, "segment": None, "parent_org": None, "advisor_email": None,
    "status": None, "aum_usd": None, "business_type": None, "source_file": "f.csv", "source_page": None,
}  # fmt: skip


def raw_clients_frame(rows: list[dict], modified_at: pd.Timestamp) -> pd.DataFrame:
    """A raw_clients-like frame, one version per record: rows give client_id, client_name and any other column."""
    frame = pd.DataFrame(rows)
    n = len(frame)
    for column, value in {**RAW_DEFAULTS, "source_modified_at": modified_at}.items():
        if column not in frame.columns:
            frame[column] = [value] * n
    frame["source_record_id"] = frame["client_id"]
    frame["source_row"] = np.arange(n)
    return frame


def labelled_raw_clients(n: int, seed: int, now: pd.Timestamp) -> tuple[pd.DataFrame, LabelledBook]:
    """A generated book with its truth, through the real ingestion: its drop read as a landing file, its API records."""
    book = labelled_book(n, seed=seed)
    drop = book.drop.to_csv(index=False).encode()
    raw_clients = assemble_raw_clients(
        [(LandingFile("drop.csv", len(drop), now), read_drop("drop.csv", drop))],
        records_to_frame([(1, book.api.to_dict(orient="records"))], now),
        now,
    ).raw_clients
    return raw_clients, book
