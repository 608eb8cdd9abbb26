"""History: who owned a client on a date, the client's timeline, and the territory map as of a date."""

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from crm_territory.app import cache, ui
from crm_territory.logic.analytics.history import find_clients

version = cache.version()
st.title("History")
clients = cache.table(version, "client_dim")
search = st.text_input("Find a client (name or key)", value=st.query_params.get("client", ""), key="history_search")
found = find_clients(clients, search)
if search.strip() and found.empty:
    st.info(f"No client's name or key holds {search.strip()!r}.")
options = found["client_key"].tolist() or clients["client_key"].head(1).tolist()
labels = dict(zip(found["client_key"], found["Client"] + "  (" + found["client_key"] + ")"))
client_key = st.selectbox("Client", options, format_func=lambda key: labels.get(key, key), key="history_client")
day = st.date_input("On", value=dt.datetime.now(dt.UTC).date(), key="history_date")
# the end of the chosen day (UTC): "who owned it on that date" means by the close of that day
when = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
data = cache.history(version, str(client_key or ""), when)

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
            tooltip=["Assignment:N", "Territory:N", "Advisor:N", "Placed by:N", "Advisor reason:N", "From:T", "To:T", "Open:N"],
        )
    )
    st.altair_chart(chart.properties(height=max(120, 40 * timeline["Territory"].nunique())), width="stretch")
    st.dataframe(timeline, hide_index=True)
    st.dataframe(data["versions"], hide_index=True, column_config={"AUM (USD)": ui.MONEY})

st.subheader(f"Territory map as of {day:%Y-%m-%d}")
mapped = data["map"]
st.metric("Active clients placed then", ui.count(mapped["Active clients"].sum()))
st.dataframe(mapped, hide_index=True)
ui.footer(version)
