"""The asset pages' charts: the data they draw, the bars drawn, and PNGs that decode, stay small and repeat."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from crm_territory.wiring import charts

MAX_PNG_BYTES = 60_000


def _fact(rows: list[tuple[str, str, str, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["client_key", "territory_id", "assignment_type", "is_current"])


# T1: 3 current PRIMARY, 1 former PRIMARY (inactive client), 2 current SECONDARY, 1 former SECONDARY
# T2: 1 current PRIMARY; T3: only a current SECONDARY; T4: nothing at all
FACT = _fact(
    [
        ("a", "T1", "PRIMARY", True),
        ("b", "T1", "PRIMARY", True),
        ("c", "T1", "PRIMARY", True),
        ("d", "T1", "PRIMARY", False),
        ("e", "T2", "PRIMARY", True),
        ("a", "T2", "SECONDARY", True),
        ("e", "T1", "SECONDARY", True),
        ("b", "T1", "SECONDARY", True),
        ("d", "T3", "SECONDARY", False),
        ("c", "T3", "SECONDARY", True),
    ]
)


def test_clients_per_territory_counts_current_primary_and_secondary_rows_every_territory_listed():
    data = charts.clients_per_territory(FACT, ["T1", "T2", "T3", "T4"])
    # counted by hand from FACT above; ties (T3, T4: 0 PRIMARY) by id
    assert data.to_dict("records") == [
        {"territory_id": "T1", "primary": 3, "secondary": 2},
        {"territory_id": "T2", "primary": 1, "secondary": 1},
        {"territory_id": "T3", "primary": 0, "secondary": 1},
        {"territory_id": "T4", "primary": 0, "secondary": 0},
    ]


def test_a_territory_in_the_fact_but_not_in_the_list_is_still_drawn():
    data = charts.clients_per_territory(FACT, ["T2"])
    assert set(data["territory_id"]) == {"T1", "T2", "T3"}
    assert int(data["primary"].sum()) == 4


def test_the_territory_bars_are_the_counts():
    data = charts.clients_per_territory(FACT, ["T1", "T2", "T3", "T4"])
    fig = charts.territory_figure(data)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 2 * len(data)  # a PRIMARY and a SECONDARY bar per territory
    primary, secondary = bars[: len(data)], bars[len(data) :]
    assert [b.get_width() for b in primary] == [3, 1, 0, 0]
    assert [b.get_width() for b in secondary] == [2, 1, 1, 0]
    assert [b.get_x() for b in secondary] == [3, 1, 0, 0]  # stacked after PRIMARY
    assert [t.get_text() for t in ax.get_yticklabels()] == ["T1", "T2", "T3", "T4"]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "0"]  # the PRIMARY count written by each bar


LOADS = pd.DataFrame(
    {
        "advisor_email": ["low@x.com", "over@x.com", "full@x.com", "idle@x.com", "nocap@x.com", "gone@x.com"],
        "capacity": [10, 4, 5, 8, 0, 0],
        "load": [2, 6, 5, 0, 3, 0],
    }
)


def test_advisor_utilisation_flags_over_capacity_and_orders_by_utilisation():
    data = charts.advisor_utilisation(LOADS)
    # gone@ has neither clients nor capacity: left out. nocap@ holds clients with no capacity: infinitely over
    assert list(data["advisor_email"]) == ["nocap@x.com", "over@x.com", "full@x.com", "low@x.com", "idle@x.com"]
    assert list(data["load"]) == [3, 6, 5, 2, 0]
    assert list(data["capacity"]) == [0, 4, 5, 10, 8]
    assert list(data["over"]) == [True, True, False, False, False]  # at capacity is not over
    assert np.isinf(data["utilisation"].iloc[0]) and data["utilisation"].iloc[1] == pytest.approx(1.5)


def test_the_utilisation_bars_are_the_loads_with_capacity_ticks_and_over_capacity_in_red():
    data = charts.advisor_utilisation(LOADS)
    ax = charts.utilisation_figure(data).axes[0]
    assert [b.get_width() for b in ax.patches] == [3, 6, 5, 2, 0]
    colours = [to_hex(b.get_facecolor()) for b in ax.patches]
    assert colours == [charts.OVER_COLOUR] * 2 + [charts.WITHIN_COLOUR] * 3
    (ticks,) = ax.collections
    assert [list(p) for p in ticks.get_offsets()] == [[0, 0], [4, 1], [5, 2], [10, 3], [8, 4]]
    # one shared domain: the labels are the names before it, the domain said once
    assert [t.get_text() for t in ax.get_yticklabels()] == ["nocap", "over", "full", "low", "idle"]
    assert "@x.com" in ax.get_xlabel() and "2 over capacity" in ax.get_title(loc="left")


def test_advisors_of_several_domains_keep_their_whole_e_mail():
    loads = pd.DataFrame({"advisor_email": ["a@x.com", "b@y.com"], "capacity": [1, 1], "load": [1, 1]})
    ax = charts.utilisation_figure(charts.advisor_utilisation(loads)).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a@x.com", "b@y.com"]


def _book_scale() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A book at the size the charts must handle: 100,000 clients, 20 territories, 60 advisors."""
    rng = np.random.default_rng(7)
    territories = [f"{r}-{s}" for r in ("NORTHEAST", "SOUTHEAST", "MIDWEST", "SOUTHWEST", "WEST") for s in ("A", "B", "C", "D")]
    n = 100_000
    fact = pd.DataFrame(
        {
            "client_key": np.arange(n).astype(str),
            "territory_id": rng.choice(territories, n),
            "assignment_type": np.where(rng.random(n) < 0.1, "SECONDARY", "PRIMARY"),
            "is_current": rng.random(n) < 0.9,
        }
    )
    loads = pd.DataFrame(
        {
            "advisor_email": [f"firstname.lastname{i:02d}@wealth-advisors.example.com" for i in range(60)],
            "capacity": rng.integers(1_000, 2_000, 60),
            "load": rng.integers(800, 2_400, 60),
        }
    )
    return charts.clients_per_territory(fact, territories), charts.advisor_utilisation(loads)


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel: a truncated or corrupt file fails here
    return image


def test_the_charts_at_book_scale_are_small_pngs_that_decode_and_repeat_byte_for_byte():
    territories, advisors = _book_scale()
    for draw, data, rows in ((charts.territory_chart, territories, 20), (charts.utilisation_chart, advisors, 60)):
        png = draw(data)
        image = _decode(png)
        assert image.format == "PNG" and image.mode == "P"
        assert len(png) < MAX_PNG_BYTES, f"{draw.__name__}: {len(png):,} bytes"
        width, height = image.size
        assert width == round(charts.WIDTH_IN * charts.DPI)
        assert height >= rows * 0.14 * charts.DPI  # every bar has its own line of pixels, not squeezed
        assert draw(data) == png  # deterministic: no timestamp or version in the file
        # not blank: the bars' colours are on the image
        assert len(image.convert("RGB").getcolors(maxcolors=256) or []) > 3


def test_the_markdown_image_carries_the_png_itself():
    png = charts.territory_chart(charts.clients_per_territory(FACT, ["T1", "T2"]))
    markdown = charts.markdown_image("clients per territory", png)
    match = re.fullmatch(r"!\[clients per territory\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match is not None
    assert base64.b64decode(match.group(1)) == png


def _colours(png: bytes) -> set[str]:
    return {to_hex(tuple(c / 255 for c in rgb)) for _, rgb in _decode(png).convert("RGB").getcolors(maxcolors=256) or []}


def test_every_chart_colour_survives_the_palette_even_on_a_few_pixels():
    # no SECONDARY rows: the only SECONDARY pixels are the legend's swatch (a fitted palette merged it into grey)
    only_primary = charts.clients_per_territory(FACT[FACT["assignment_type"] == "PRIMARY"], ["T1", "T2"])
    assert {charts.PRIMARY_COLOUR, charts.SECONDARY_COLOUR} <= _colours(charts.territory_chart(only_primary))
    utilisation = charts.utilisation_chart(charts.advisor_utilisation(LOADS))
    assert {charts.OVER_COLOUR, charts.WITHIN_COLOUR} <= _colours(utilisation)


def test_an_empty_book_still_draws_both_charts():
    no_rows = charts.clients_per_territory(FACT.iloc[0:0], ["UNASSIGNED"])
    assert no_rows.to_dict("records") == [{"territory_id": "UNASSIGNED", "primary": 0, "secondary": 0}]
    assert _decode(charts.territory_chart(no_rows)).format == "PNG"
    nobody = charts.advisor_utilisation(LOADS.iloc[0:0])
    assert nobody.empty
    assert _decode(charts.utilisation_chart(nobody)).format == "PNG"
    assert _decode(charts.territory_chart(charts.clients_per_territory(FACT.iloc[0:0], []))).format == "PNG"
