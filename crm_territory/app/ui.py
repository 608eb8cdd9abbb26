"""What every page shares: number formats, the CSV download, the footer naming the tables read."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from crm_territory.app import cache


def count(value: float) -> str:
    return f"{int(value):,}"


def usd(value: float) -> str:
    """AUM as people read it on a page: $325.4B, $7.9M."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"${value / 1e9:,.1f}B" if abs(value) >= 1e9 else f"${value / 1e6:,.1f}M"


def percent(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def csv_download(frame: pd.DataFrame, label: str, file_name: str, key: str) -> None:
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=file_name, mime="text/csv", key=key)


# The most rows a table sends to the browser: a first run's changes or a big territory's clients would be megabytes of
# Arrow each page load. The CSV download next to such a table holds every row.
SHOWN_ROWS = 5000


def rows(frame: pd.DataFrame, column_config: dict | None = None) -> None:
    """A sortable table of ``frame``'s first SHOWN_ROWS rows, saying so when there are more."""
    st.dataframe(frame.head(SHOWN_ROWS), hide_index=True, column_config=column_config)
    if len(frame) > SHOWN_ROWS:
        st.caption(f"The first {SHOWN_ROWS:,} of {len(frame):,} rows; the CSV download has them all.")


def footer(version: str) -> None:
    st.caption(f"Read-only. {cache.source().where()}, published version {version}.")


MONEY = st.column_config.NumberColumn(format="dollar")
SHARE = st.column_config.NumberColumn(format="percent")
