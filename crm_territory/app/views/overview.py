"""Overview: the book in five numbers, clients and AUM by region x segment, what the last run changed."""

import altair as alt
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
data = cache.overview(version)
st.title("Territory overview")
if not data["headline"]["Clients"]:
    st.info(f"No clients published yet ({cache.source().where()}): run the pipeline first (make run).")
headline = data["headline"]
columns = st.columns(5)
columns[0].metric("Clients", ui.count(headline["Clients"]))
columns[1].metric("Active clients", ui.count(headline["Active clients"]))
columns[2].metric("AUM", ui.usd(headline["AUM (USD)"]))
columns[3].metric("Territories", ui.count(headline["Territories"]), help="UNASSIGNED not counted")
columns[4].metric("Active advisors", ui.count(headline["Active advisors"]))

st.subheader("Clients and AUM by region and segment")
measure = st.radio("Colour by", ["Clients", "Active clients", "AUM (USD)"], horizontal=True, key="overview_measure")
grid = data["grid"]
heat = alt.Chart(grid).encode(x=alt.X("Segment:N"), y=alt.Y("Region:N"))
chart = heat.mark_rect().encode(
    color=alt.Color(f"{measure}:Q", scale=alt.Scale(scheme="blues")),
    tooltip=["Region:N", "Segment:N", "Clients:Q", "Active clients:Q", alt.Tooltip("AUM (USD):Q", format="$,.0f")],
) + heat.mark_text(baseline="middle").encode(text=alt.Text(f"{measure}:Q", format=",.0f" if measure != "AUM (USD)" else "$.3s"))
st.altair_chart(chart, width="stretch")

st.subheader("What the last run changed")
at = data["last_change_at"]
if at is None:
    st.info("No history yet: run the pipeline (make run).")
else:
    st.caption(f"The latest run that changed anything started at {at:%Y-%m-%d %H:%M:%S} UTC.")
    changed = data["client_changes"]
    c = st.columns(4)
    c[0].metric("New clients", ui.count(changed["New clients"]))
    c[1].metric("Clients changed", ui.count(changed["Clients changed"]))
    c[2].metric("Clients gone", ui.count(changed["Clients gone"]))
    moved = data["changes"]
    c[3].metric("Placements changed", ui.count(len(moved) - int((moved["Change"] == "new client").sum())))
    st.table(data["change_summary"])
    with st.expander("Every client whose placement changed"):
        ui.rows(moved)  # a first run lists every client as new
        ui.csv_download(moved, "Download the changes (CSV)", "placement_changes.csv", "changes_csv")
ui.footer(version)
