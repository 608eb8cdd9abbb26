"""The Account families page: parent organisations rolled up, and a treemap layout of them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_territory.logic.analytics.common import PRIMARY, SECONDARY


def family_rollup(client_dim: pd.DataFrame, fact: pd.DataFrame) -> pd.DataFrame:
    """One row per parent organisation (clients with no parent are not a family).

    Columns: Parent organisation, Clients, Active clients, AUM (USD), Territories (distinct PRIMARY territories of its
    clients), Advisors (distinct PRIMARY advisors), Secondary rows (current SECONDARY rows of its clients), Split
    (its clients sit in more than one territory), Territory list. Sorted by AUM, largest first.
    """
    members = client_dim.loc[client_dim["parent_org"].notna(), ["client_key", "parent_org", "is_active", "aum_usd"]]
    rows = fact[fact["client_key"].isin(members["client_key"])]
    rows = rows.merge(members[["client_key", "parent_org"]], on="client_key")
    primary = rows[rows["assignment_type"] == PRIMARY]
    secondary = rows[(rows["assignment_type"] == SECONDARY) & rows["is_current"].astype(bool)]
    by_family = members.groupby("parent_org").agg(
        clients=("client_key", "size"), active=("is_active", "sum"), aum=("aum_usd", "sum")
    )
    spans = primary.groupby("parent_org").agg(
        territories=("territory_id", "nunique"), advisors=("primary_advisor_email", "nunique")
    )
    listed = primary.drop_duplicates(["parent_org", "territory_id"]).sort_values("territory_id")
    territory_list = listed.groupby("parent_org")["territory_id"].agg(", ".join)
    index = by_family.index
    out = pd.DataFrame(
        {
            "Parent organisation": index.to_numpy(dtype=object),
            "Clients": by_family["clients"].to_numpy(dtype=np.int64),
            "Active clients": by_family["active"].astype(int).to_numpy(dtype=np.int64),
            "AUM (USD)": by_family["aum"].astype(float).to_numpy(),
            "Territories": spans["territories"].reindex(index, fill_value=0).to_numpy(dtype=np.int64),
            "Advisors": spans["advisors"].reindex(index, fill_value=0).to_numpy(dtype=np.int64),
            "Secondary rows": secondary.groupby("parent_org").size().reindex(index, fill_value=0).to_numpy(dtype=np.int64),
            "Territory list": territory_list.reindex(index, fill_value="").to_numpy(dtype=object),
        }
    )
    out["Split"] = out["Territories"] > 1
    return out.sort_values(["AUM (USD)", "Parent organisation"], ascending=[False, True], ignore_index=True)


def treemap(values: pd.Series, width: float = 100.0, height: float = 60.0) -> pd.DataFrame:
    """A squarified treemap (Bruls, Huizing and van Wijk, 2000) of positive ``values`` in a width x height box.

    Returns one rectangle per value, in the values' order: label (the index), value, x, x2, y, y2. Altair draws it
    with ``mark_rect`` (Vega-Lite has no treemap of its own). O(n) over the values, which are the families shown.
    """
    positive = values[values > 0].sort_values(ascending=False)
    total = float(positive.sum())
    rects: list[tuple[object, float, float, float, float, float]] = []
    if total <= 0:
        return pd.DataFrame(
            {"label": pd.Series(dtype=object), **{c: pd.Series(dtype=float) for c in ["value", "x", "x2", "y", "y2"]}}
        )
    scale = width * height / total
    items = [(label, float(v), float(v) * scale) for label, v in positive.items()]
    x, y, w, h = 0.0, 0.0, width, height
    row: list[tuple[object, float, float]] = []

    def worst(areas: list[float], side: float) -> float:
        s = sum(areas)
        return max(max(side * side * a / (s * s), (s * s) / (side * side * a)) for a in areas)

    def lay(row_items: list[tuple[object, float, float]], x: float, y: float, w: float, h: float):
        s = sum(a for _, _, a in row_items)
        if w >= h:  # a column along the left side
            col_w = s / h
            yy = y
            for label, value, area in row_items:
                rects.append((label, value, x, x + col_w, yy, yy + area / col_w))
                yy += area / col_w
            return x + col_w, y, w - col_w, h
        row_h = s / w
        xx = x
        for label, value, area in row_items:
            rects.append((label, value, xx, xx + area / row_h, y, y + row_h))
            xx += area / row_h
        return x, y + row_h, w, h - row_h

    for item in items:
        side = min(w, h)
        if row and worst([a for _, _, a in row] + [item[2]], side) > worst([a for _, _, a in row], side):
            x, y, w, h = lay(row, x, y, w, h)
            row = []
        row.append(item)
    if row:
        lay(row, x, y, w, h)
    return pd.DataFrame(rects, columns=["label", "value", "x", "x2", "y", "y2"])
