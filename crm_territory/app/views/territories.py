"""Territories: a sortable table and bar charts per territory; open one for its clients, advisors and rules."""

import altair as alt
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
summary = cache.territories(version)
st.title("Territories")
c = st.columns(4)
c[0].metric("Territories", ui.count((summary["Territory"] != "UNASSIGNED").sum()))
unassigned = summary.loc[summary["Territory"] == "UNASSIGNED", "Clients"]
c[1].metric("UNASSIGNED clients", ui.count(unassigned.sum()))
c[2].metric("Secondary rows", ui.count(summary["Secondary clients"].sum()))
c[3].metric("Largest territory", str(summary["Territory"].iloc[0]) if len(summary) else "—", help="by clients")

measure = st.radio("Bars", ["Clients", "Active clients", "AUM (USD)", "Secondary clients:Q"], horizontal=True, key="bars")
bars = (
    alt.Chart(summary)
    .mark_bar()
    .encode(
        x=alt.X(f"{measure}:Q"),
        y=alt.Y("Territory:N", sort="-x"),
        color=alt.condition(alt.datum.Territory == "UNASSIGNED", alt.value("#d62728"), alt.value("#1f77b4")),
        tooltip=[
            "Territory:N",
            "Clients:Q",
            "Active clients:Q",
            alt.Tooltip("AUM (USD):Q", format="$,.0f"),
            "Secondary clients:Q",
        ],
    )
)
st.altair_chart(bars, width="stretch")
st.dataframe(
    summary,
    hide_index=True,
    column_config={"AUM (USD)": ui.MONEY, "Utilisation": ui.SHARE},
)
ui.csv_download(summary, "Download territories (CSV)", "territories.csv", "territories_csv")

st.subheader("Open a territory")
choice = st.selectbox("Territory", summary["Territory"].tolist(), key="territory_choice")
if st.button("Open territory page", key="open_territory"):
    st.switch_page("views/territory.py", query_params={"territory": choice})
ui.footer(version)
