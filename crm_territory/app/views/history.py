"""History: who owned a client on a date, the client's timeline, and the territory map as of a date."""

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
st.title("History")
keys = cache.table(version, "client_dim")["client_key"]
wanted = st.query_params.get("client")
client_key = st.text_input(
    "Client key (as in client_dim, e.g. crm_api:100003)",
    value=wanted or (str(keys.iloc[0]) if len(keys) else ""),
    key="history_client",
)
day = st.date_input("On", value=dt.datetime.now(dt.UTC).date(), key="history_date")
# the end of the chosen day (UTC): "who owned it on that date" means by the close of that day
when = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
data = cache.history(version, client_key.strip(), when)

st.subheader(f"Who owned {client_key} on {day:%Y-%m-%d}")
owner = data["owner"]
if owner.empty:
    st.info("No assignment of this client then (not yet known, or not a client key).")
else:
    st.table(owner)
timeline = data["timeline"]
if not timeline.empty:
    st.subheader("Timeline")
    chart = (
        alt.Chart(timeline)
        .mark_bar(height=16)
        .encode(
            x=alt.X("From:T", title=None),
            x2="To:T",
            y=alt.Y("Territory:N"),
            color="Advisor:N",
            tooltip=["Assignment", "Territory", "Advisor", "Placed by", "Advisor reason", "From", "To", "Open"],
        )
    )
    st.altair_chart(chart.properties(height=max(120, 40 * timeline["Territory"].nunique())), use_container_width=True)
    st.dataframe(timeline, hide_index=True)
    st.dataframe(data["versions"], hide_index=True, column_config={"AUM (USD)": ui.MONEY})

st.subheader(f"Territory map as of {day:%Y-%m-%d}")
mapped = data["map"]
st.metric("Active clients placed then", ui.count(mapped["Active clients"].sum()))
st.dataframe(mapped, hide_index=True)
ui.footer(version)
