"""Materialization metadata every asset reports: row count, the column schema, a preview; numbers people can read."""

from __future__ import annotations

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

PREVIEW_ROWS = 10
SAMPLE_ROWS = 20  # failing rows an integrity check shows
DIGITS = 3  # floats in metadata and previews: 1.088, not 1.088235294117647


def readable(value: object) -> object:
    """A metadata value as people read it: floats rounded; everything else unchanged."""
    if isinstance(value, (float, np.floating)):
        return round(float(value), DIGITS)
    return value


def markdown_table(df: pd.DataFrame, limit: int = PREVIEW_ROWS) -> str:
    if df.empty:
        return "_no rows_"
    head = df.head(limit)
    floats = head.select_dtypes("float").columns
    head = head.assign(**{c: head[c].round(DIGITS) for c in floats})
    shown = head.astype(object).where(head.notna(), "")
    text = shown.to_markdown(index=False)
    return text if len(df) <= limit else f"{text}\n\n_{limit} of {len(df):,} rows_"


def table_metadata(df: pd.DataFrame, preview: pd.DataFrame | None = None, **extra: object) -> dict[str, Any]:
    """Row count and a preview (of ``preview``'s columns when given) plus ``extra``, rounded for people.

    The column schema (names, types, descriptions) is the asset's definition metadata, from its model
    (``crm_territory.wiring.assets``): it shows before the first run and does not repeat on every one.
    """
    return {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "preview": dg.MetadataValue.md(markdown_table(df if preview is None else preview)),
        **{key: readable(value) for key, value in extra.items()},
    }


def count_by(df: pd.DataFrame, columns: list[str], counted: str = "rows") -> pd.DataFrame:
    """Rows per combination of ``columns``, largest first: the tables checks and assets show."""
    if df.empty:
        return pd.DataFrame(columns=[*columns, counted])
    return (
        df.groupby(columns, dropna=False)
        .size()
        .rename(counted)
        .reset_index()
        .sort_values(counted, ascending=False, kind="stable")
    )
