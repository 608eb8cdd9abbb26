"""Charts for the asset pages: small PNGs drawn with matplotlib's Agg canvas, embedded in markdown metadata.

The Dagster UI renders markdown metadata, and a ``data:image/png;base64`` image inside it, with no extra
service: the chart travels with the materialization event. So every image must stay small (each under
~60 KB: they are stored in the event log on every run) and be deterministic (the same data gives the same
bytes). Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, never pyplot:
no global figure state, no GUI backend, safe in a run worker with other threads. matplotlib and Pillow
are imported when a chart is drawn, not with the module: the definitions load in every run worker and
CLI call, and matplotlib alone would add most of a second to each.

The data each chart draws is computed by a plain function (``clients_per_territory``,
``advisor_utilisation``), so tests can compare the bars with counts taken independently from the tables.
"""

from __future__ import annotations

import base64
import io
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from PIL import Image

DPI = 150  # 7 in = 1,050 px, which the UI shows at its natural size: an 8 pt label is 17 px, readable zoomed out to half
WIDTH_IN = 7.0
PRIMARY_COLOUR = "#1f4e79"
SECONDARY_COLOUR = "#9dc3e6"
WITHIN_COLOUR = "#4a90c2"
OVER_COLOUR = "#c0392b"
GREY_LEVELS = 12  # for text and grid edges: anti-aliased text keeps its shape with a dozen greys
# every label on the image stays legible: a long e-mail or territory id is cut, not the chart squeezed
LABEL_CHARS = 30
LEFT_IN = 1.9  # room for a LABEL_CHARS label at 6.5-8 pt


def clients_per_territory(assignments_fact: pd.DataFrame, territory_ids: pd.Series | list[str]) -> pd.DataFrame:
    """Current assignments per territory: ``primary`` (active clients placed there) and ``secondary`` rows.

    Every territory of ``territory_ids`` is listed (zero included), largest PRIMARY first, then by id.
    """
    current = assignments_fact.loc[assignments_fact["is_current"], ["territory_id", "assignment_type"]]
    counts = pd.crosstab(current["territory_id"], current["assignment_type"])
    ids = pd.Index(pd.unique(pd.Series(list(territory_ids), dtype=object)), name="territory_id")
    # a territory id the fact holds but territory_dim does not (never expected) is still drawn, not hidden
    ids = ids.append(counts.index.difference(ids)).rename("territory_id")
    out = pd.DataFrame(
        {
            "territory_id": ids,
            "primary": counts.get("PRIMARY", pd.Series(dtype=int)).reindex(ids, fill_value=0).to_numpy(dtype=int),
            "secondary": counts.get("SECONDARY", pd.Series(dtype=int)).reindex(ids, fill_value=0).to_numpy(dtype=int),
        }
    )
    return out.sort_values(["primary", "territory_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def advisor_utilisation(loads: pd.DataFrame) -> pd.DataFrame:
    """One row per advisor with clients or capacity: ``load``, ``capacity``, ``over`` (load > capacity).

    Highest utilisation first (an advisor with clients and no capacity is infinitely over), then by e-mail.
    """
    rows = loads.loc[(loads["load"] > 0) | (loads["capacity"] > 0), ["advisor_email", "load", "capacity"]].copy()
    rows["load"] = rows["load"].astype(int)
    rows["capacity"] = rows["capacity"].astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["utilisation"] = np.where(rows["capacity"] > 0, rows["load"] / rows["capacity"].clip(lower=1), np.inf)
    rows["over"] = rows["load"] > rows["capacity"]
    rows = rows.sort_values(["utilisation", "advisor_email"], ascending=[False, True], kind="stable")
    return rows.reset_index(drop=True)


def _short(labels: pd.Series) -> list[str]:
    return [s if len(s) <= LABEL_CHARS else s[: LABEL_CHARS - 1] + "…" for s in labels.astype(str)]


def _figure(rows: int, bar_in: float) -> tuple[Figure, Axes]:
    """A figure ``bar_in`` inches per bar, with fixed margins in inches.

    Fixed margins rather than a layout engine: constrained layout measures every label in an extra
    drawing pass, a third of the time of a 60-bar chart. Labels are cut to LABEL_CHARS, so they fit.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(2.4, 1.0 + bar_in * rows)  # a floor so a short chart still has room for its legend
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=LEFT_IN / WIDTH_IN, right=1 - 0.55 / WIDTH_IN, top=1 - 0.4 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def territory_chart(data: pd.DataFrame) -> bytes:
    """:func:`territory_figure` as a PNG."""
    return _png(territory_figure(data))


def utilisation_chart(data: pd.DataFrame) -> bytes:
    """:func:`utilisation_figure` as a PNG."""
    return _png(utilisation_figure(data))


def territory_figure(data: pd.DataFrame) -> Figure:
    """Stacked horizontal bars: PRIMARY (active clients) and SECONDARY rows per territory, the PRIMARY count written."""
    fig, ax = _figure(len(data), bar_in=0.24)
    y = np.arange(len(data))
    ax.barh(y, data["primary"], color=PRIMARY_COLOUR, label="PRIMARY (active clients)")
    ax.barh(y, data["secondary"], left=data["primary"], color=SECONDARY_COLOUR, label="SECONDARY")
    totals = data["primary"] + data["secondary"]
    pad = max(int(totals.max()) if len(totals) else 0, 1) * 0.01
    for yi, (total, primary) in enumerate(zip(totals, data["primary"])):  # one label per territory (~20), not per client
        ax.text(total + pad, yi, f"{primary:,}", va="center", fontsize=7)
    ax.set_yticks(y, _short(data["territory_id"]))
    ax.set_ylim(len(data) - 0.4, -0.6)  # largest first, at the top
    ax.set_xlabel("current assignments", fontsize=8)
    ax.set_title("Clients per territory", fontsize=10, loc="left")
    # above the bars, right of the title: inside the axes it would hide the shortest bars
    ax.legend(fontsize=7, frameon=False, ncols=2, loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
    return fig


def utilisation_figure(data: pd.DataFrame) -> Figure:
    """Horizontal bars of each advisor's load, a tick at its capacity; an advisor over capacity in red."""
    fig, ax = _figure(len(data), bar_in=0.14)
    y = np.arange(len(data))
    colours = np.where(data["over"].to_numpy(dtype=bool), OVER_COLOUR, WITHIN_COLOUR)
    ax.barh(y, data["load"], color=colours)
    ax.scatter(data["capacity"], y, marker="|", s=90, color="black", linewidths=1.4, zorder=3)
    emails = data["advisor_email"].astype(str)
    domain = emails.str.extract(r"@([^@]+)$", expand=False)
    local = emails.str.replace(r"@[^@]+$", "", regex=True)
    # one domain for every advisor (the usual case): the labels are the part before it, said once below
    shared = domain.iloc[0] if len(domain) and domain.notna().all() and (domain == domain.iloc[0]).all() else None
    ax.set_yticks(y, _short(local if shared else emails))
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_ylim(len(data) - 0.4, -0.6)  # largest first, at the top; no empty band above and below
    ax.set_xlabel(f"clients (bar: load; black tick: capacity){f'; advisors @{shared}' if shared else ''}", fontsize=8)
    over = int(data["over"].sum())
    ax.set_title(f"Advisor load vs capacity: {over} over capacity (red)", fontsize=10, loc="left")
    return fig


@cache
def _palette() -> Image.Image:
    """The PNG's fixed palette: greys for text and lines, each chart colour and its half-blend with white (bar edges).

    A fixed palette rather than one fitted to the image: a colour that covers few pixels (the legend's
    SECONDARY swatch when no territory has SECONDARY rows) keeps its colour, and it costs no fitting.
    """
    from PIL import Image

    greys = [round(255 * i / (GREY_LEVELS - 1)) for i in range(GREY_LEVELS)]
    colours = [(g, g, g) for g in greys]
    for hex_colour in (PRIMARY_COLOUR, SECONDARY_COLOUR, WITHIN_COLOUR, OVER_COLOUR):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        colours += [rgb, tuple((c + 255) // 2 for c in rgb)]
    palette = Image.new("P", (1, 1))
    palette.putpalette([channel for colour in colours for channel in colour])
    return palette


def _png(fig: Figure) -> bytes:
    """The figure as an indexed-colour PNG (several times smaller than RGB), byte for byte the same for the same figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    # the Agg buffer straight to Pillow (no intermediate PNG), mapped to the fixed palette: no metadata, no
    # timestamp, no version string in the file, so the same figure gives the same bytes
    pixels = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
    image = Image.fromarray(pixels).quantize(palette=_palette(), dither=Image.Dither.NONE)
    fig.clear()
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def markdown_image(alt: str, png: bytes) -> str:
    """Markdown showing ``png`` inline: the Dagster UI renders it on the materialization's metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
