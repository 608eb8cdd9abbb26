"""Territory analytics: ``make app`` (``streamlit run crm_territory/app/main.py``). Read-only pages over the published
tables (CSV or Snowflake, as ``CRM_STORAGE`` says); nothing here writes or activates anything."""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Territory analytics", layout="wide")
PAGES = [
    st.Page(VIEWS / "overview.py", title="Overview", url_path="overview", default=True),
    st.Page(VIEWS / "territories.py", title="Territories", url_path="territories"),
    st.Page(VIEWS / "territory.py", title="Territory", url_path="territory"),
    st.Page(VIEWS / "advisors.py", title="Advisors", url_path="advisors"),
    st.Page(VIEWS / "families.py", title="Account families", url_path="families"),
    st.Page(VIEWS / "rules_preview.py", title="Rules preview", url_path="rules_preview"),
    st.Page(VIEWS / "history.py", title="History", url_path="history"),
    st.Page(VIEWS / "quality.py", title="Data quality", url_path="quality"),
]
st.navigation(PAGES).run()
