"""The app's reads and page figures, cached by Streamlit per published version: a new run is picked up on the next
page load, and a page computed once is served from memory until then.

``st.cache_data`` keys on the arguments: the source's ``version()`` (published.json's run ids for CSV, a fingerprint
query for Snowflake) and the page's parameters. The ten-minute ttl only bounds memory.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from crm_territory.app import page_data
from crm_territory.app.data import TableSource, source_from_environment

TTL_SECONDS = 600


@st.cache_resource(show_spinner=False)
def source() -> TableSource:
    return source_from_environment()


def version() -> str:
    return source().version()


@st.cache_data(ttl=TTL_SECONDS, max_entries=64, show_spinner=False)
def table(version: str, name: str) -> pd.DataFrame:
    return source().read(name)


def reader(version: str) -> page_data.Read:
    return lambda name: table(version, name)


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Reading the tables ...")
def overview(version: str) -> dict[str, Any]:
    return page_data.overview_page(reader(version))


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Reading the tables ...")
def territories(version: str) -> pd.DataFrame:
    return page_data.territories_page(reader(version))


@st.cache_data(ttl=TTL_SECONDS, max_entries=256, show_spinner="Reading the tables ...")
def territory(version: str, territory_id: str, search: str) -> dict[str, pd.DataFrame]:
    return page_data.territory_page(reader(version), territory_id, search)


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Reading the tables ...")
def advisors(version: str) -> dict[str, Any]:
    return page_data.advisors_page(reader(version))


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Reading the tables ...")
def families(version: str) -> pd.DataFrame:
    return page_data.families_page(reader(version))


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Previewing the candidate rules ...")
def rules_preview(version: str, candidate_stamp: str) -> dict[str, Any]:
    # candidate_stamp (the candidate file's size and mtime) re-evaluates an edited candidate before the next run
    return page_data.preview_page(reader(version), source())


@st.cache_data(ttl=TTL_SECONDS, max_entries=256, show_spinner="Reading the history ...")
def history(version: str, client_key: str, when: pd.Timestamp) -> dict[str, Any]:
    return page_data.history_page(reader(version), client_key, when)


@st.cache_data(ttl=TTL_SECONDS, max_entries=16, show_spinner="Reading the tables ...")
def quality(version: str) -> dict[str, pd.DataFrame]:
    return page_data.quality_page(reader(version))


def candidate_stamp() -> str:
    path = source().candidate_path
    if path is None or not path.is_file():
        return "none"
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
