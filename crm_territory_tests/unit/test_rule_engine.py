"""The rule engine: each rule type, evaluated over small books whose expected placements are worked out by hand."""

import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.matching.client_dim import build_client_dim
from crm_territory.logic.reference.canonical import alias_key
from crm_territory.logic.rules.engine import PLACEMENT_COLUMNS, SECONDARY_COLUMNS, _name_keys, evaluate
from crm_territory.logic.rules.loader import load_rules, parse_rules
from crm_territory.logic.rules.model import RulesError
from crm_territory_tests.support import REPO_ROOT, SEED_SAMPLE, utc

NAN = math.nan
BOOK_COLUMNS = ["client_key", "client_name", "region", "segment", "parent_org", "aum_usd", "business_type"]


def book(*rows) -> pd.DataFrame:
    """A client_dim-shaped frame: (client_key, client_name, region, segment, parent_org, aum_usd, business_type)."""
    frame = pd.DataFrame(list(rows), columns=BOOK_COLUMNS).astype({"aum_usd": "float64"})
    for column in ("region", "segment", "parent_org", "business_type"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["primary_advisor_email"] = None
    frame["is_active"] = True
    return frame


def rules_of(text: str):
    return parse_rules("version: 1\n" + textwrap.dedent(text), "test.yaml")


def one_rule(when: str):
    return rules_of(
        f"territories:\n  rules:\n    - {{id: probe, priority: 1, when: {when}, assign: {{region: West, segment: Retail}}}}\n"
    )


def placed(placement) -> dict[str, tuple]:
    """client_key -> (target_region, target_segment, assigned_by)."""
    c = placement.clients
    return {k: (r, s, a) for k, r, s, a in zip(c["client_key"], c["target_region"], c["target_segment"], c["assigned_by"])}


def secondary_rows(placement) -> list[tuple]:
    return list(zip(*(placement.secondary[column] for column in SECONDARY_COLUMNS)))


# --- segmentation --------------------------------------------------------------------------------

TIERS = """
segmentation:
  precedence: {precedence}
  tiers:
    - {{id: big, segment: Institutional, when: {{aum_usd: {{gte: 100}}}}}}
    - {{id: trusts, segment: Private Wealth, when: {{business_type: {{eq: Trust}}}}}}
territories:
  rules:
    - {{id: own, priority: 1, assign: client}}
"""

SEGMENT_BOOK = book(
    ("k1", "A", "West", "Retail", None, 500.0, "Trust"),  # both tiers match: the first in file order wins
    ("k2", "B", "West", "Retail", None, 5.0, "Trust"),  # the second tier
    ("k3", "C", "West", None, None, 5.0, "Trust"),  # no source segment
    ("k4", "D", "West", "Retail", None, NAN, None),  # no tier
    ("k5", "E", "West", None, None, NAN, None),  # no tier, no segment: cannot be placed by client
)


def test_segmentation_with_rules_precedence_replaces_the_source_segment():
    placement = evaluate(SEGMENT_BOOK, rules_of(TIERS.format(precedence="rules")))
    c = placement.clients
    assert list(c["segment"]) == ["Institutional", "Private Wealth", "Private Wealth", "Retail", None]
    assert list(c["segment_rule"]) == ["big", "trusts", "trusts", None, None]
    # the territory rule places clients in their own region and *derived* segment
    assert list(c["target_segment"]) == ["Institutional", "Private Wealth", "Private Wealth", "Retail", None]
    assert list(c["assigned_by"]) == ["own", "own", "own", "own", "fallback"]


def test_segmentation_with_source_precedence_only_fills_a_missing_segment():
    placement = evaluate(SEGMENT_BOOK, rules_of(TIERS.format(precedence="source")))
    c = placement.clients
    assert list(c["segment"]) == ["Retail", "Retail", "Private Wealth", "Retail", None]
    assert list(c["segment_rule"]) == [None, None, "trusts", None, None]


# --- each operator -------------------------------------------------------------------------------

OPERATOR_BOOK = book(
    ("k1", "Northeast Pension Plan", "Northeast", "Retail", None, 100.0, "Trust"),
    ("k2", "West Foundation", "West", "Retail", None, 5_000_000.0, "Foundation"),
    ("k3", "Nameless", None, "Retail", None, NAN, None),
    ("k4", "Midwest Family", "Midwest", "Retail", None, 250.0, "Family Office"),
)


@pytest.mark.parametrize(
    ("when", "matching"),
    [
        ("{region: {eq: Northeast}}", {"k1"}),
        ("{region: {ne: Northeast}}", {"k2", "k3", "k4"}),  # a missing region is "not Northeast"
        ("{region: {in: [Northeast, West]}}", {"k1", "k2"}),
        ("{region: {not_in: [Northeast, West]}}", {"k3", "k4"}),
        ("{aum_usd: {gt: 100}}", {"k2", "k4"}),
        ("{aum_usd: {gte: 100}}", {"k1", "k2", "k4"}),
        ("{aum_usd: {lt: 250}}", {"k1"}),
        ("{aum_usd: {lte: 250}}", {"k1", "k4"}),  # a missing amount is in no range
        ("{aum_usd: {gt: 100, lt: 5000000}}", {"k4"}),
        ("{region: {regex: '.*est'}}", {"k2", "k4"}),  # the whole value must match: Northeast ends in "ast"
        ("{region: {regex: 'est'}}", set()),
        ("{client_name: {regex: '(?i).*\\bpension\\b.*'}}", {"k1"}),
        ("{region: {is_null: true}}", {"k3"}),
        ("{region: {not_null: true}}", {"k1", "k2", "k4"}),
        ("{business_type: {is_null: true}}", {"k3"}),
        ("{aum_usd: {is_null: true}}", {"k3"}),  # NaN is missing
        ("{aum_usd: {eq: 5000000}}", {"k2"}),  # text comparison on a numeric column: 5000000.0 reads "5000000"
        ("{aum_usd: {in: [100, 250]}}", {"k1", "k4"}),
        ("{region: {not_null: true}, aum_usd: {gte: 250}}", {"k2", "k4"}),  # columns are ANDed
        ("{business_type: {ne: Trust, not_in: [Foundation]}}", {"k3", "k4"}),  # operators are ANDed
        ("{}", {"k1", "k2", "k3", "k4"}),  # an empty `when` matches everyone
    ],
)
def test_each_operator(when, matching):
    placement = evaluate(OPERATOR_BOOK, one_rule(when))
    got = placed(placement)
    assert {k for k, (_, _, by) in got.items() if by == "probe"} == matching
    assert {k for k, (_, _, by) in got.items() if by == "fallback"} == {"k1", "k2", "k3", "k4"} - matching
    assert all(got[k][:2] == ("West", "Retail") for k in matching)
    assert all(got[k][:2] == (None, None) for k in {"k1", "k2", "k3", "k4"} - matching)


def test_numeric_operators_need_a_numeric_column():
    with pytest.raises(RulesError) as caught:
        evaluate(OPERATOR_BOOK, one_rule("{region: {gte: 5}}"))
    assert caught.value.problems == [
        (
            "territories.rules[0].when.region.gte",
            "column 'region' holds object values, not numbers: gt/gte/lt/lte need a numeric column",
        )
    ]
    with pytest.raises(RulesError, match="column 'is_active' holds bool values, not numbers"):
        evaluate(OPERATOR_BOOK, one_rule("{is_active: {lt: 1}}"))


def test_a_column_the_clients_lack_fails_naming_the_rule_key():
    with pytest.raises(RulesError) as caught:
        evaluate(OPERATOR_BOOK, one_rule("{revenue: {gte: 5}}"))
    assert caught.value.problems == [
        ("territories.rules[0].when.revenue", "unknown column 'revenue': the clients have no such column")
    ]


# --- priority and ties ---------------------------------------------------------------------------


def test_the_lowest_priority_number_wins_and_ties_go_to_file_order():
    rules = rules_of(
        """
        territories:
          rules:
            - {id: late, priority: 90, when: {region: {eq: West}}, assign: {region: Northeast, segment: Retail}}
            - {id: tie-first, priority: 10, when: {segment: {eq: Retail}}, assign: {region: West, segment: Retail}}
            - {id: tie-second, priority: 10, when: {region: {eq: West}}, assign: {region: West, segment: Institutional}}
            - {id: own, priority: 1000, assign: client}
        """
    )
    placement = evaluate(
        book(
            ("k1", "A", "West", "Retail", None, NAN, None),  # late, tie-first, tie-second, own: tie-first (file order)
            ("k2", "B", "West", "Institutional", None, NAN, None),  # late, tie-second, own: tie-second
            ("k3", "C", "Northeast", "Institutional", None, NAN, None),  # own only
        ),
        rules,
    )
    assert placed(placement) == {
        "k1": ("West", "Retail", "tie-first"),
        "k2": ("West", "Institutional", "tie-second"),
        "k3": ("Northeast", "Institutional", "own"),
    }


# --- overrides and exclusions --------------------------------------------------------------------

PINNED = """
territories:
  rules:
    - {id: west-retail, priority: 10, when: {region: {eq: West}}, assign: {region: West, segment: Retail}}
    - {id: own, priority: 1000, assign: client}
overrides:
  - {client_key: k1, assign: {region: Northeast, segment: Institutional}, advisor: Pinned@Example.com}
  - {client_key: k2, advisor: second@example.com}
  - {client_key: k9, assign: {region: West, segment: Retail}}
"""


def test_overrides_beat_every_rule_and_pin_advisors():
    placement = evaluate(
        book(
            ("k1", "A", "West", "Retail", None, NAN, None),
            ("k2", "B", "West", "Institutional", None, NAN, None),
            ("k3", "C", None, None, None, NAN, None),
        ),
        rules_of(PINNED),
    )
    assert placed(placement) == {
        "k1": ("Northeast", "Institutional", "override:k1"),  # beats west-retail
        "k2": ("West", "Retail", "west-retail"),  # an advisor-only override leaves the territory to the rules
        "k3": (None, None, "fallback"),
    }
    assert list(placement.clients["pinned_advisor"]) == ["pinned@example.com", "second@example.com", None]
    # k9 is not in this book: its override is idle


def test_an_override_places_a_client_no_rule_matches():
    placement = evaluate(book(("k1", "A", None, None, None, NAN, None)), rules_of(PINNED))
    assert placed(placement) == {"k1": ("Northeast", "Institutional", "override:k1")}


EXCLUDED = """
territories:
  rules:
    - {id: west-retail, priority: 10, when: {region: {eq: West}}, assign: {region: West, segment: Retail}}
    - {id: midwest-desk, priority: 20, when: {segment: {eq: Retail}}, assign: {region: Midwest, segment: Retail}}
    - {id: own, priority: 1000, assign: client}
exclusions:
  - {client_key: k1, not_in: {region: West, segment: Retail}}
  - {client_key: k2, not_in: {region: West, segment: Retail}}
  - {client_key: k2, not_in: {region: Midwest, segment: Retail}}
  - {client_key: k3, not_in: {region: Northeast, segment: Institutional}}
  - {client_key: k9, not_in: {region: West, segment: Retail}}
"""


def test_an_exclusion_skips_the_rule_and_the_next_match_applies():
    placement = evaluate(
        book(
            ("k1", "A", "West", "Retail", None, NAN, None),  # west-retail excluded -> midwest-desk
            ("k2", "B", "West", "Retail", None, NAN, None),  # west-retail, midwest-desk and own (West, Retail) excluded
            ("k3", "C", "Northeast", "Institutional", None, NAN, None),  # own would give the excluded territory
            ("k4", "D", "West", "Retail", None, NAN, None),  # no exclusion
        ),
        rules_of(EXCLUDED),
    )
    assert placed(placement) == {
        "k1": ("Midwest", "Retail", "midwest-desk"),
        "k2": (None, None, "fallback"),
        "k3": (None, None, "fallback"),
        "k4": ("West", "Retail", "west-retail"),
    }


def test_an_exclusion_of_the_clients_own_territory_only_blocks_by_client_rules_for_that_territory():
    rules = rules_of(
        """
        territories:
          rules:
            - {id: own, priority: 1, assign: client}
            - {id: catch-all, priority: 2, assign: {region: Northeast, segment: Retail}}
        exclusions:
          - {client_key: k1, not_in: {region: West, segment: Retail}}
          - {client_key: k2, not_in: {region: West, segment: Retail}}
        """
    )
    placement = evaluate(
        book(("k1", "A", "West", "Retail", None, NAN, None), ("k2", "B", "West", "Institutional", None, NAN, None)), rules
    )
    assert placed(placement) == {"k1": ("Northeast", "Retail", "catch-all"), "k2": ("West", "Institutional", "own")}


# --- SECONDARY: the parent's territory, overlays -------------------------------------------------

PARENTS = """
territories:
  rules:
    - {id: own, priority: 1, assign: client}
secondary:
  parent_org: true
"""


def test_a_subsidiary_placed_elsewhere_than_its_parent_gets_a_secondary_row_there():
    placement = evaluate(
        book(
            ("p1", "Atlas Holdings", "Northeast", "Institutional", None, NAN, None),
            ("c1", "Atlas Capital", "West", "Retail", "Atlas Holdings", NAN, None),  # elsewhere: a row
            ("c2", "Atlas Bank", "Northeast", "Institutional", "atlas  HOLDINGS", NAN, None),  # same territory: none
            ("c3", "Atlas Trust", "Northeast", "Retail", "ATLAS-Holdings.", NAN, None),  # case and punctuation ignored
            ("c4", "Orphan", "West", "Retail", "Nobody Inc", NAN, None),  # parent not a client: none
            ("c5", "Unplaced", None, None, "Atlas Holdings", NAN, None),  # no territory of its own: a row
        ),
        rules_of(PARENTS),
    )
    assert secondary_rows(placement) == [
        ("c1", "Northeast", "Institutional", None, "parent_org"),
        ("c3", "Northeast", "Institutional", None, "parent_org"),
        ("c5", "Northeast", "Institutional", None, "parent_org"),
    ]


def test_parent_names_are_compared_exactly_like_alias_keys():
    names = ["Atlas  HOLDINGS, Inc.", "İstanbul Holdings", "\u212aelvin & Co", "Ｆｕｌｌ Width 1", "N.E.", "", None, "ﬁne-Art"]
    expected = [alias_key(n) if n is not None else "" for n in names]
    assert _name_keys(np.array(names, dtype=object)).to_pylist() == expected
    assert expected[:4] == ["atlasholdingsinc", "istanbulholdings", "kelvinco", "width1"]


def test_no_secondary_row_when_the_parent_has_no_territory_or_names_itself():
    placement = evaluate(
        book(
            ("p1", "Lost Holdings", None, None, None, NAN, None),
            ("c1", "Lost Sub", "West", "Retail", "Lost Holdings", NAN, None),  # the parent is UNASSIGNED
            ("c2", "Selfie Corp", "West", "Retail", "Selfie Corp", NAN, None),  # its own name
        ),
        rules_of(PARENTS),
    )
    assert secondary_rows(placement) == []


def test_several_clients_with_the_parents_name_the_first_by_client_key_is_the_parent():
    placement = evaluate(
        book(
            ("crm_api:9", "Zenith Group", "West", "Retail", None, NAN, None),
            ("crm_api:1", "Zenith Sub", "Midwest", "Retail", "Zenith Group", NAN, None),
            ("csv_drop:2", "zenith group", "Northeast", "Institutional", None, NAN, None),
            ("csv_drop:1", "ZENITH GROUP", "Southeast", "Retail", "Zenith Group", NAN, None),
        ),
        rules_of(PARENTS),
    )
    # "crm_api:9" < "csv_drop:1" < "csv_drop:2": crm_api:9 is the parent; csv_drop:1 shares the name with it and
    # takes crm_api:9 too (the first other client)
    assert secondary_rows(placement) == [
        ("crm_api:1", "West", "Retail", None, "parent_org"),
        ("csv_drop:1", "West", "Retail", None, "parent_org"),
    ]


def test_a_client_named_like_its_own_parent_takes_the_next_client_with_that_name():
    placement = evaluate(
        book(
            ("a", "Orbit", "West", "Retail", "Orbit", NAN, None),
            ("b", "ORBIT", "Northeast", "Retail", None, NAN, None),
        ),
        rules_of(PARENTS),
    )
    assert secondary_rows(placement) == [("a", "Northeast", "Retail", None, "parent_org")]


def test_the_parents_territory_is_the_one_after_overrides():
    rules = rules_of(PARENTS + "overrides:\n  - {client_key: p1, assign: {region: Midwest, segment: Institutional}}\n")
    placement = evaluate(
        book(
            ("p1", "Atlas Holdings", "West", "Retail", None, NAN, None),
            ("c1", "Atlas Capital", "West", "Retail", "Atlas Holdings", NAN, None),
        ),
        rules,
    )
    assert secondary_rows(placement) == [("c1", "Midwest", "Institutional", None, "parent_org")]


def test_overlays_add_secondary_rows_by_criteria_after_the_parents_row():
    rules = rules_of(
        PARENTS
        + """\
  overlays:
    - {id: foundations, overlay: FOUNDATIONS, owner_role: Foundations Specialist, when: {business_type: {eq: Foundation}}}
    - {id: large, overlay: LARGE_BOOK, owner_role: Large Book Desk, when: {aum_usd: {gte: 1000}}}
"""
    )
    placement = evaluate(
        book(
            ("k1", "Parent Co", "Northeast", "Retail", None, 5000.0, None),
            ("k2", "Giving Fund", "West", "Retail", "Parent Co", 2000.0, "Foundation"),
            ("k3", "Small", "West", "Retail", None, 10.0, "Foundation"),
            ("k4", "Nothing", "West", "Retail", None, NAN, None),
        ),
        rules,
    )
    assert secondary_rows(placement) == [
        ("k1", None, None, "LARGE_BOOK", "large"),
        ("k2", "Northeast", "Retail", None, "parent_org"),
        ("k2", None, None, "FOUNDATIONS", "foundations"),
        ("k2", None, None, "LARGE_BOOK", "large"),
        ("k3", None, None, "FOUNDATIONS", "foundations"),
    ]


# --- fallback and shape --------------------------------------------------------------------------


def test_nothing_matching_falls_back_with_no_target():
    placement = evaluate(book(("k1", "A", "West", "Retail", None, NAN, None)), rules_of("territories:\n  rules: []\n"))
    assert placed(placement) == {"k1": (None, None, "fallback")}
    assert list(placement.clients.columns) == PLACEMENT_COLUMNS
    assert list(placement.secondary.columns) == SECONDARY_COLUMNS and placement.secondary.empty


def test_one_row_per_client_in_the_input_order_and_index():
    clients = book(
        ("k3", "C", "West", "Retail", None, NAN, None),
        ("k1", "A", "Northeast", "Retail", None, NAN, None),
        ("k2", "B", None, "Retail", None, NAN, None),
    )
    clients.index = [30, 10, 20]
    rules = rules_of("territories:\n  rules:\n    - {id: own, priority: 1, assign: client}\n")
    placement = evaluate(clients, rules)
    assert list(placement.clients.index) == [30, 10, 20]
    assert list(placement.clients["client_key"]) == ["k3", "k1", "k2"]
    assert placement.rules_version == rules.version


def test_an_empty_book_gives_an_empty_placement():
    rules = load_rules(REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml")
    placement = evaluate(book(), rules)
    assert placement.clients.empty and list(placement.clients.columns) == PLACEMENT_COLUMNS
    assert placement.secondary.empty and list(placement.secondary.columns) == SECONDARY_COLUMNS


# --- the committed rules reproduce today's behaviour ---------------------------------------------


def seed_client_dim(reference, drop: str) -> pd.DataFrame:
    data = drop.encode()
    landing_file = LandingFile("clients.csv", len(data), utc("2026-11-01"))
    ingest = assemble_raw_clients([(landing_file, read_drop("clients.csv", data))], None, utc("2026-11-02"))
    return build_client_dim(ingest.raw_clients, reference)


def test_the_committed_rules_on_the_seed_sample_give_the_seeds_territories(reference):
    clients = seed_client_dim(reference, SEED_SAMPLE)
    placement = evaluate(clients, load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml"))
    assert placed(placement) == {
        "csv_drop:1": ("Northeast", "Institutional", "by-region-and-segment"),
        "csv_drop:2": ("Northeast", "Retail", "by-region-and-segment"),
        "csv_drop:3": ("Midwest", "Institutional", "by-region-and-segment"),
    }
    assert list(placement.clients["segment"]) == ["Institutional", "Retail", "Institutional"]
    assert placement.clients["segment_rule"].isna().all() and placement.clients["pinned_advisor"].isna().all()
    assert placement.secondary.empty


def test_the_committed_rules_send_unknown_regions_and_segments_to_unassigned(reference):
    drop = SEED_SAMPLE + "4,Delta Partners,Atlantis,Retail,,a@example.com\n5,Echo Fund,West,,,b@example.com\n"
    placement = evaluate(seed_client_dim(reference, drop), load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml"))
    got = placed(placement)
    assert got["csv_drop:4"] == (None, None, "fallback")  # unknown region
    assert got["csv_drop:5"] == (None, None, "fallback")  # no segment
    assert got["csv_drop:1"] == ("Northeast", "Institutional", "by-region-and-segment")


# --- the worked example, end to end --------------------------------------------------------------

WORKED_BOOK = book(
    ("csv_drop:1", "Atlas Capital Partners", "Northeast", "Institutional", "Atlas Holdings", 1_000_000.0, None),
    ("csv_drop:2", "Beacon Wealth Management", "Northeast", "Retail", "Beacon Group", 2_000_000.0, "Individual"),
    ("csv_drop:3", "Crescent Advisory Group", "Midwest", "Institutional", "Crescent Holdings", NAN, None),
    ("csv_drop:4", "Atlas Holdings", "Southeast", "Retail", None, 300_000_000.0, "Corporation"),
    ("csv_drop:5", "Teachers Pension Fund", "Southwest", "Institutional", None, 10_000_000.0, None),
    ("csv_drop:6", "Dune Trust", None, None, None, 10_000_000.0, "Trust"),
    ("csv_drop:7", "Eagle Retail", "Northeast", "Retail", "atlas  HOLDINGS", 500_000.0, "Foundation"),
    ("csv_drop:8", "Fjord", "Southwest", "Retail", None, NAN, None),
    ("csv_drop:9", "Gale", "Northwest", "Retail", "Fjord", 3_000_000.0, None),
)


def test_the_worked_example():
    placement = evaluate(WORKED_BOOK, load_rules(REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml"))
    c = placement.clients.set_index("client_key")
    assert placed(placement) == {
        "csv_drop:1": ("Northeast", "Institutional", "override:csv_drop:1"),  # atlas-group would match; the override wins
        "csv_drop:2": ("Midwest", "Private Wealth", "midsize-retail-pilot"),  # Retail, 2M in (1M, 5M], not in the West
        "csv_drop:3": ("Midwest", "Institutional", "by-region-and-segment"),
        "csv_drop:4": ("Southeast", "Institutional", "by-region-and-segment"),  # 300M: tier-institutional
        "csv_drop:5": ("Northeast", "Institutional", "pension-plans"),
        "csv_drop:6": ("Northeast", "Private Wealth", "trusts-without-region"),
        "csv_drop:7": (None, None, "fallback"),  # eq is exact text: not atlas-group; (Northeast, Retail) excluded
        "csv_drop:8": ("West", "Retail", "southwest-retail-into-west"),
        "csv_drop:9": ("West", "Retail", "northwest-retail-into-west"),
    }
    assert c.loc["csv_drop:4", "segment"] == "Institutional" and c.loc["csv_drop:4", "segment_rule"] == "tier-institutional"
    assert c.loc["csv_drop:6", "segment"] == "Private Wealth" and c.loc["csv_drop:6", "segment_rule"] == "tier-private-wealth"
    assert c["segment_rule"].drop(["csv_drop:4", "csv_drop:6"]).isna().all()
    assert c.loc["csv_drop:1", "pinned_advisor"] == "advisor1@example.com"
    assert c.loc["csv_drop:9", "pinned_advisor"] == "advisor9@example.com"
    assert secondary_rows(placement) == [
        ("csv_drop:1", "Southeast", "Institutional", None, "parent_org"),  # Atlas Holdings is csv_drop:4
        ("csv_drop:7", "Southeast", "Institutional", None, "parent_org"),
        ("csv_drop:7", None, None, "FOUNDATIONS", "foundations"),
        # csv_drop:9's parent Fjord is in West Retail like csv_drop:9 itself: no row
    ]


def test_the_readme_worked_example_table():
    """The three clients of the worked-example table in docs/rules.md, placed as it says."""
    from pathlib import Path

    import pandas as pd

    from crm_territory.logic.rules.engine import evaluate as place
    from crm_territory.logic.rules.loader import load_rules as load

    clients = pd.DataFrame(
        {
            "client_key": ["a", "b", "c"],
            "client_name": ["Trust Co", "Retail Person", "Foundation Co"],
            "region": ["Southwest", "Southwest", "Midwest"],
            "segment": ["Retail", "Retail", "Retail"],
            "parent_org": [None, None, None],
            "primary_advisor_email": [None, None, None],
            "is_active": [True, True, True],
            "aum_usd": [3e8, 1e6, 2e6],
            "business_type": ["Trust", "Individual", "Foundation"],
        }
    )
    rules = load(Path(__file__).resolve().parents[2] / "data" / "rules" / "examples" / "worked_example.yaml")
    placed = place(clients, rules)
    got = placed.clients[["target_region", "target_segment", "assigned_by", "segment_rule"]].to_numpy().tolist()
    assert got == [
        ["Southwest", "Institutional", "by-region-and-segment", "tier-institutional"],
        ["West", "Retail", "southwest-retail-into-west", None],
        ["Midwest", "Private Wealth", "midsize-retail-pilot", None],
    ]
    assert placed.secondary[["client_key", "overlay", "assigned_by"]].to_numpy().tolist() == [["c", "FOUNDATIONS", "foundations"]]


def test_a_regular_expression_that_backtracks_catastrophically_fails_the_rules_instead_of_hanging(monkeypatch):
    """One client named 40 a's and '!': re.fullmatch of the probe's `(a+)+$` ran for hours (2^40 ways to split the a's)."""
    import crm_territory.logic.rules.engine as engine

    monkeypatch.setattr(engine, "REGEX_SECONDS", 0.2)  # the budget, shortened for the test
    clients = book(("k1", "a" * 40 + "!", "West", "Retail", None, 1.0, None), ("k2", "aaa", "West", "Retail", None, 1.0, None))
    # the probe's pattern: the regex engine answers it at once (it recognises the nested repeat)
    assert {
        k for k, (_, _, by) in placed(evaluate(clients, one_rule("{client_name: {regex: '(a+)+$'}}"))).items() if by == "probe"
    } == {"k2"}
    # one it cannot shortcut: the budget runs out, and the rules fail naming the rule and the value
    with pytest.raises(
        RulesError, match=r"territories\.rules\[0\]\.when\.client_name\.regex: .*backtracks catastrophically"
    ) as caught:
        evaluate(clients, one_rule("{client_name: {regex: '(a|aa)+$'}}"))
    assert "aaaa" in str(caught.value)  # names the value it stopped at
    # an ordinary pattern on the same values is answered as re would
    assert placed(evaluate(clients, one_rule("{client_name: {regex: 'a+'}}")))["k2"][2] == "probe"
