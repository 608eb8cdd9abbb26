"""One territory: its clients (searchable, downloadable), its advisors, and the rules that placed its clients."""

import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
ids = cache.territories(version)["Territory"].tolist()
wanted = st.query_params.get("territory")
if not ids:
    st.info("No territory published yet: run the pipeline first (make run).")
    st.stop()
territory_id = str(st.selectbox("Territory", ids, index=ids.index(wanted) if wanted in ids else 0, key="territory_id"))
st.query_params["territory"] = territory_id  # the address names the territory shown: it can be shared or bookmarked
st.title(f"Territory {territory_id}")
search = st.text_input("Search clients (name, key, parent, advisor)", key="client_search")
data = cache.territory(version, territory_id, search)
clients = data["clients"]
primary = clients[clients["Assignment"] == "PRIMARY"]
c = st.columns(4)
c[0].metric("Clients shown", ui.count(len(clients)))
c[1].metric("Active PRIMARY clients", ui.count(primary["Active"].sum()))
c[2].metric("AUM of PRIMARY clients", ui.usd(primary["AUM (USD)"].sum()))
c[3].metric("Advisors", ui.count(len(data["advisors"])))
ui.rows(clients, {"AUM (USD)": ui.MONEY})
ui.csv_download(clients, "Download these clients (CSV)", f"{territory_id}_clients.csv", "territory_clients_csv")

st.subheader("Advisors")
st.dataframe(data["advisors"], hide_index=True, column_config={"Utilisation": ui.SHARE})
st.subheader("Rules that placed its clients")
st.table(data["rules"])
ui.footer(version)
