"""Row-level judgement shared by every source: which rows are usable, and why the others are not.

A row is unusable when it has no id, an id we cannot key on, no name, a status we do not know
or (from the API) an updated_at that is not a timestamp. Unusable rows are never dropped: they
become quarantine rows with the reason and their original values, so rows in = loaded + quarantined.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from crm_territory.logic.messages import Message, join_messages
from crm_territory.schemas import CLIENT_ID_PATTERN

STATUSES = ("active", "inactive")


_LABEL = {"client_id": "invalid client_id", "status": "unknown status", "updated_at": "invalid updated_at"}


def judge_rows(rows: pd.DataFrame, *, require_updated_at: bool) -> pd.Series:
    """Return, per row, why it cannot be used (missing when it can). ``rows`` holds source text."""
    client_id = rows["client_id"]
    status = rows["status"].str.lower()

    def quoted(column: str, suffix: str) -> Callable[[pd.Index], pd.Series]:
        return lambda idx: rows.loc[idx, column].fillna("").str.slice(0, 40).radd(f"{_LABEL[column]} '") + f"' {suffix}"

    checks: list[tuple[pd.Series, Message]] = [
        (client_id.isna(), "missing client_id"),
        (
            client_id.notna() & ~client_id.str.fullmatch(CLIENT_ID_PATTERN, na=False).astype(bool),
            quoted("client_id", "(letters, digits, '.', '-', '_'; at most 64)"),
        ),
        (rows["client_name"].isna(), "missing client_name"),
        (status.notna() & ~status.isin(STATUSES), quoted("status", "(expected active or inactive)")),
    ]
    if require_updated_at:
        parsed = parse_timestamps(rows["updated_at"])
        checks.append((parsed.isna(), quoted("updated_at", "(expected an ISO-8601 timestamp)")))
    return join_messages(checks, rows.index)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text to UTC timestamps; anything else becomes NaT (and is judged by the caller)."""
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype("datetime64[ns, UTC]")


def original_values(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The row's source values as one JSON object per row (the quarantine keeps what was sent)."""
    if rows.empty:
        return pd.Series([], index=rows.index, dtype=object)
    lines = rows[columns].to_json(orient="records", lines=True, force_ascii=False).splitlines()
    return pd.Series(lines, index=rows.index, dtype=object)


# what identifies a quarantined row across runs (ingested_at changes on every run)
QUARANTINE_IDENTITY = [
    "source_system",
    "source_file",
    "source_row",
    "source_page",
    "source_record_id",
    "reason",
    "original_values",
]


def new_quarantined_rows(quarantined: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of ``quarantined`` the previous run's quarantine did not hold (all of them without a previous run)."""
    if previous is None or previous.empty or quarantined.empty:
        return quarantined
    seen = previous[QUARANTINE_IDENTITY].drop_duplicates()
    marked = quarantined[QUARANTINE_IDENTITY].merge(seen, how="left", on=QUARANTINE_IDENTITY, indicator=True)
    return quarantined[(marked["_merge"] == "left_only").to_numpy()]
