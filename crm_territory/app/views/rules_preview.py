"""Rules preview: what the candidate rules file would move. Nothing is activated from here."""

import altair as alt
import pandas as pd
import streamlit as st

from crm_territory.app import cache, ui

version = cache.version()
data = cache.rules_preview(version, cache.candidate_stamp())
st.title("Rules preview")
st.caption(
    "What activating the candidate in data/rules/candidate/ would change. Activation is a command (see docs/rules.md), never this page."
)
status = data["status"]
if status == "published":
    st.success(f"Candidate {data['version']}: the preview the last run published (assignments_preview).")
elif status == "computed":
    st.warning(
        f"Candidate {data['version']}: evaluated now on the published tables; the next run publishes its preview, which activation needs."
    )
else:
    st.info(data["message"] or "No candidate rules to preview.")
headline = data["headline"]
c = st.columns(3)
c[0].metric("Clients changing", ui.count(headline["Clients changing"]))
c[1].metric("Changing territory", ui.count(headline["Changing territory"]))
c[2].metric("Changing advisor", ui.count(headline["Changing advisor"]))

flows = data["flows"]
if not flows.empty:
    st.subheader("Where clients would move")
    # a two-column flow diagram: each line joins the old territory (left) to the new one (right), as thick as its clients
    left = flows.groupby("From territory")["Clients"].sum().sort_values(ascending=False)
    right = flows.groupby("To territory")["Clients"].sum().sort_values(ascending=False)
    y_left = pd.Series(range(len(left)), index=left.index, dtype=float)
    y_right = pd.Series(range(len(right)), index=right.index, dtype=float) * (max(len(left) - 1, 1) / max(len(right) - 1, 1))
    lines = flows.assign(x=0.0, x2=1.0, y=flows["From territory"].map(y_left), y2=flows["To territory"].map(y_right))
    nodes = pd.concat(
        [
            pd.DataFrame({"x": 0.0, "y": y_left.to_numpy(), "label": y_left.index, "align": "right"}),
            pd.DataFrame({"x": 1.0, "y": y_right.to_numpy(), "label": y_right.index, "align": "left"}),
        ]
    )
    scale_x, scale_y = alt.Scale(domain=[-0.3, 1.3]), alt.Scale(reverse=True)
    links = (
        alt.Chart(lines)
        .mark_rule(opacity=0.5, color="#1f77b4")
        .encode(
            x=alt.X("x:Q", axis=None, scale=scale_x),
            x2="x2",
            y=alt.Y("y:Q", axis=None, scale=scale_y),
            y2="y2",
            strokeWidth=alt.StrokeWidth("Clients:Q", scale=alt.Scale(range=[1, 18]), legend=None),
            tooltip=["From territory:N", "To territory:N", "Clients:Q"],
        )
    )
    labels_left = (
        alt.Chart(nodes[nodes["align"] == "right"])
        .mark_text(align="right", dx=-6)
        .encode(x=alt.X("x:Q", scale=scale_x), y=alt.Y("y:Q", scale=scale_y), text="label:N")
    )
    labels_right = (
        alt.Chart(nodes[nodes["align"] == "left"])
        .mark_text(align="left", dx=6)
        .encode(x=alt.X("x:Q", scale=scale_x), y=alt.Y("y:Q", scale=scale_y), text="label:N")
    )
    st.altair_chart((links + labels_left + labels_right).properties(height=max(200, 28 * len(left))), width="stretch")
    st.table(flows)

st.subheader("Load before and after")
territories = data["territories"]
changed = territories[territories["Change"] != 0]
if not changed.empty:
    long = changed.melt(
        id_vars="Territory", value_vars=["Clients before", "Clients after"], var_name="When", value_name="Clients"
    )
    st.altair_chart(
        alt.Chart(long)
        .mark_bar()
        .encode(
            x="Clients:Q",
            y=alt.Y("Territory:N"),
            yOffset="When:N",
            color="When:N",
            tooltip=["Territory:N", "When:N", "Clients:Q"],
        ),
        width="stretch",
    )
st.dataframe(data["advisors"], hide_index=True, column_config={"Utilisation before": ui.SHARE, "Utilisation after": ui.SHARE})
st.subheader("Per client")
diff = data["diff"]
ui.rows(diff, {"AUM (USD)": ui.MONEY})
ui.csv_download(diff, "Download the per-client diff (CSV)", "rules_preview.csv", "preview_csv")
ui.footer(version)
