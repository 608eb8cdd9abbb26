"""Account families: parent organisations rolled up as a treemap; families split across territories in red."""

import altair as alt
import streamlit as st

from crm_territory.app import cache, ui
from crm_territory.logic.analytics.families import treemap

version = cache.version()
families = cache.families(version)
st.title("Account families")
split = families[families["Split"]]
c = st.columns(4)
c[0].metric("Families", ui.count(len(families)))
c[1].metric("Split across territories", ui.count(len(split)))
c[2].metric("Clients in families", ui.count(families["Clients"].sum()))
c[3].metric("Largest family (AUM)", str(families["Parent organisation"].iloc[0]) if len(families) else "—")

if families.empty:
    st.info("No client has a parent organisation.")
else:
    size_by = st.radio("Size by", ["AUM (USD)", "Clients"], horizontal=True, key="family_size")
    top = st.slider("Families shown", 10, 200, 60, step=10, key="family_top")
    biggest = families.nlargest(top, size_by)
    layout = treemap(biggest.set_index("Parent organisation")[size_by].astype(float))
    layout = layout.merge(biggest, left_on="label", right_on="Parent organisation")
    layout["Spread"] = layout["Split"].map({True: "split across territories", False: "one territory"})
    rects = alt.Chart(layout).encode(
        x=alt.X("x:Q", axis=None, scale=alt.Scale(domain=[0, 100])),
        x2="x2",
        y=alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[0, 60], reverse=True)),
        y2="y2",
    )
    chart = rects.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "Spread:N", scale=alt.Scale(domain=["split across territories", "one territory"], range=["#d62728", "#9ecae1"])
        ),
        tooltip=[
            "Parent organisation:N",
            "Clients:Q",
            alt.Tooltip("AUM (USD):Q", format="$,.0f"),
            "Territories:Q",
            "Territory list:N",
            "Advisors:Q",
        ],
    ) + alt.Chart(layout[((layout["x2"] - layout["x"]) > 12) & ((layout["y2"] - layout["y"]) > 3)]).mark_text(
        align="left", baseline="top", dx=3, dy=3, fontSize=10, color="white"
    ).encode(
        x=alt.X("x:Q", scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("y:Q", scale=alt.Scale(domain=[0, 60], reverse=True)),
        text="Parent organisation:N",
    )
    st.altair_chart(chart.properties(height=480), width="stretch")
only_split = st.checkbox("Only families split across territories", key="only_split")
ui.rows(split if only_split else families, {"AUM (USD)": ui.MONEY})
ui.csv_download(families, "Download families (CSV)", "account_families.csv", "families_csv")
ui.footer(version)
