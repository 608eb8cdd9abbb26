"""Row-level judgement shared by every source: which rows are usable, and why the others are not.

A row is unusable when it has no id, an id we cannot key on, no name, a status we do not know
or (from the API) an updated_at that is not a timestamp. Unusable rows are never dropped: they
become quarantine rows with the reason and their original values, so rows in = loaded + quarantined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.schemas import CLIENT_ID_PATTERN

STATUSES = ("active", "inactive")


def _reason_column(checks: list[tuple[pd.Series, str | pd.Series]], index: pd.Index) -> pd.Series:
    """Join the messages of the failed checks per row with '; ' (missing when every check passed)."""
    reasons = pd.Series("", index=index, dtype=object)
    for failed, message in checks:
        if not failed.any():
            continue
        text = message if isinstance(message, str) else message.astype(str)
        reasons = reasons.where(~failed, reasons + np.where(reasons == "", "", "; ") + text)
    return reasons.where(reasons != "", None)


def judge_rows(rows: pd.DataFrame, *, require_updated_at: bool) -> pd.Series:
    """Return, per row, why it cannot be used (missing when it can). ``rows`` holds source text."""
    client_id = rows["client_id"]
    status = rows["status"].str.lower()
    checks: list[tuple[pd.Series, str | pd.Series]] = [
        (client_id.isna(), "missing client_id"),
        (
            client_id.notna() & ~client_id.str.fullmatch(CLIENT_ID_PATTERN, na=False).astype(bool),
            "invalid client_id '" + client_id.fillna("").str.slice(0, 40) + "' (letters, digits, '.', '-', '_'; at most 64)",
        ),
        (rows["client_name"].isna(), "missing client_name"),
        (status.notna() & ~status.isin(STATUSES), "unknown status '" + rows["status"].fillna("") + "' (expected active or inactive)"),
    ]
    if require_updated_at:
        parsed = parse_timestamps(rows["updated_at"])
        checks.append(
            (parsed.isna(), "invalid updated_at '" + rows["updated_at"].fillna("").str.slice(0, 40) + "' (expected an ISO-8601 timestamp)")
        )
    return _reason_column(checks, rows.index)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text to UTC timestamps; anything else becomes NaT (and is judged by the caller)."""
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype("datetime64[ns, UTC]")


def original_values(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The row's source values as one JSON object per row (the quarantine keeps what was sent)."""
    if rows.empty:
        return pd.Series([], index=rows.index, dtype=object)
    lines = rows[columns].to_json(orient="records", lines=True, force_ascii=False).splitlines()
    return pd.Series(lines, index=rows.index, dtype=object)
