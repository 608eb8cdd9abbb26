"""Advisors: load against capacity, over-capacity advisors with the reason, clients that changed advisor last run."""

import altair as alt
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
data = cache.advisors(version)
load = data["load"]
st.title("Advisors")
over = load[load["Over capacity"]]
changes = data["changes"]
c = st.columns(4)
c[0].metric("Active advisors", ui.count(load["Active"].sum()))
c[1].metric("Over capacity", ui.count(len(over)))
c[2].metric("Highest utilisation", ui.percent(load["Utilisation"].max()))
c[3].metric(
    "Clients that changed advisor", ui.count(0 if changes is None else len(changes)), help="in the last run that changed anything"
)

shown = load[load["Active"] | (load["Clients"] > 0)]
bars = alt.Chart(shown).encode(y=alt.Y("Advisor:N", sort="-x"))
chart = bars.mark_bar().encode(
    x=alt.X("Clients:Q", title="Active clients (bar) and capacity (tick)"),
    color=alt.condition(alt.datum["Over capacity"], alt.value("#d62728"), alt.value("#1f77b4")),
    tooltip=["Advisor:N", "Name:N", "Clients:Q", "Capacity:Q", alt.Tooltip("Utilisation:Q", format=".0%"), "Why over capacity:N"],
) + bars.mark_tick(color="black", thickness=2).encode(x="Capacity:Q")
st.altair_chart(chart.properties(height=max(200, 20 * len(shown))), width="stretch")

st.subheader("Over capacity, and why")
if over.empty:
    st.success("No advisor is over capacity.")
else:
    st.table(over[["Advisor", "Clients", "Capacity", "Why over capacity"]])
st.dataframe(load, hide_index=True, column_config={"Utilisation": ui.SHARE})

st.subheader("Clients that changed advisor in the last run")
if changes is None or changes.empty:
    st.info("No client changed advisor in the last run that changed anything.")
else:
    st.caption(f"Run started {data['at']:%Y-%m-%d %H:%M:%S} UTC.")
    st.dataframe(
        changes[["client_key", "Advisor before", "Advisor now", "Why", "Territory before", "Territory now"]], hide_index=True
    )
ui.footer(version)
