"""Data quality: quarantined rows, unknown spellings, possible duplicates to review, files rejected."""

import altair as alt
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
data = cache.quality(version)
st.title("Data quality")
quarantine, spellings, duplicates, files = data["quarantine"], data["spellings"], data["duplicates"], data["files"]
c = st.columns(4)
c[0].metric("Quarantined rows", ui.count(quarantine["Rows"].sum()))
c[1].metric("Unknown spellings", ui.count(len(spellings)))
c[2].metric("Possible duplicates", ui.count(len(duplicates)))
c[3].metric("Rejected or deferred files", ui.count(len(files)))

unreadable = sorted(getattr(cache.source(), "unreadable", set()) & {"quarantined_clients", "ingest_manifest"})
if unreadable:
    st.warning(
        f"This role cannot read {', '.join(unreadable)} (schema RAW: unvalidated client values), so the quarantine and "
        "file figures below are empty. Grant SELECT on them to a role allowed to see those values (docs/analytics.md)."
    )
st.subheader("Quarantined rows by source, file and reason")
if not quarantine.empty:
    st.altair_chart(
        alt.Chart(quarantine)
        .mark_bar()
        .encode(
            x="sum(Rows):Q",
            y=alt.Y("Source:N", sort="-x"),
            color="Reason:N",
            tooltip=["Source:N", "File:N", "Reason:N", "Rows:Q"],
        ),
        width="stretch",
    )
st.table(quarantine)
st.caption("The rows themselves (with their original values) are in quarantined_clients; fix them at the source.")

st.subheader("Region and segment spellings to add")
st.caption("Add the line to the alias file under data/reference/, with the canonical value, and re-run.")
st.table(spellings)

st.subheader("Possible duplicates to review")
st.caption("Copy a line into data/matching/decisions.csv (record_a,record_b,decision,note), add a note, and re-run.")
ui.rows(duplicates)
ui.csv_download(duplicates, "Download the pairs (CSV)", "possible_duplicates.csv", "duplicates_csv")

st.subheader("Files rejected or deferred by the last run")
if files.empty:
    st.success("No file was rejected or deferred.")
else:
    st.table(files)
st.dataframe(data["batches"], hide_index=True)
ui.footer(version)
