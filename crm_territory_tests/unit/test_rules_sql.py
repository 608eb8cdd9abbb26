"""The rules compiled to Snowflake SQL, on hand-made books in fakesnow: every construct gives the pandas engine's placement.

The pandas engine (``engine.evaluate``) is the reference: each test runs both on the same book and compares every
column; where the expected placement is simple it is also written out by hand.
"""

import json
import math
import textwrap
from collections.abc import Iterator

import fakesnow
import numpy as np
import pandas as pd
import pytest
import snowflake.connector
import snowflake.connector.pandas_tools as pandas_tools

from crm_territory.logic.rules.engine import PLACEMENT_COLUMNS, SECONDARY_COLUMNS, evaluate
from crm_territory.logic.rules.loader import parse_rules
from crm_territory.logic.rules.model import RulesError
from crm_territory.logic.rules.sql import NotCompilableError, compile_rules, place_in_warehouse, translate_regex

NAN = math.nan
BOOK_COLUMNS = ["client_key", "client_name", "region", "segment", "parent_org", "aum_usd", "business_type"]
TABLE = "CORE.CLIENT_DIM"


def book(*rows) -> pd.DataFrame:
    """A client_dim-shaped frame: (client_key, client_name, region, segment, parent_org, aum_usd, business_type)."""
    frame = pd.DataFrame(list(rows), columns=BOOK_COLUMNS).astype({"aum_usd": "float64"})
    for column in ("client_name", "region", "segment", "parent_org", "business_type"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["is_active"] = np.ones(len(frame), dtype=bool)
    return frame


def _sql_type(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "NUMBER(38,0)"
    if pd.api.types.is_float_dtype(dtype):
        return "FLOAT"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMP_TZ"
    return "VARCHAR"


def load_table(connection, frame: pd.DataFrame, table: str = TABLE) -> None:
    """``frame`` as ``table`` (replaced), column types from its dtypes: all-missing columns stay VARCHAR, as in the DDL."""
    schema, name = table.split(".")
    columns = ", ".join(f'"{c.upper()}" {_sql_type(frame[c].dtype)}' for c in frame.columns)
    connection.cursor().execute(f"CREATE OR REPLACE TABLE {schema}.{name} ({columns})")
    if len(frame):
        # looked up on the module at call time: fakesnow's patch replaces it there
        pandas_tools.write_pandas(
            connection, frame.rename(columns=str.upper), name, schema=schema, quote_identifiers=True, use_logical_type=True
        )


def as_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows sorted by client_key (stable: a client's SECONDARY rows keep their order), missing values as None."""
    out = frame[columns].sort_values("client_key", kind="stable").reset_index(drop=True).astype(object)
    return out.where(out.notna(), None)


@pytest.fixture(scope="module")
def warehouse() -> Iterator:
    with fakesnow.patch():
        connection = snowflake.connector.connect(database="CRM_TERRITORY", schema="CORE")
        connection.cursor().execute("CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.CORE")
        yield connection
        connection.close()


def both(warehouse, clients: pd.DataFrame, rules):
    """Place ``clients`` with both engines; assert identical placements; return the SQL one."""
    load_table(warehouse, clients)
    expected = evaluate(clients, rules)
    got = place_in_warehouse(warehouse, rules, TABLE)
    pd.testing.assert_frame_equal(as_rows(got.clients, PLACEMENT_COLUMNS), as_rows(expected.clients, PLACEMENT_COLUMNS))
    pd.testing.assert_frame_equal(as_rows(got.secondary, SECONDARY_COLUMNS), as_rows(expected.secondary, SECONDARY_COLUMNS))
    assert got.rules_version == expected.rules_version and set(got.clients["rules_version"]) <= {expected.rules_version}
    return got


def rules_of(text: str):
    return parse_rules("version: 1\n" + textwrap.dedent(text), "test.yaml")


def one_rule(when: str):
    return rules_of(
        f"territories:\n  rules:\n    - {{id: probe, priority: 1, when: {when}, assign: {{region: West, segment: Retail}}}}\n"
    )


def placed(placement) -> dict[str, tuple]:
    c = placement.clients
    return {k: (r, s, a) for k, r, s, a in zip(c["client_key"], c["target_region"], c["target_segment"], c["assigned_by"])}


OPERATOR_BOOK = book(
    ("k1", "Alpha Fund", "West", "Retail", None, 5_000_000.0, "Trust"),
    ("k2", "beta fund", "East", "Institutional", None, 10.5, "Foundation"),
    ("k3", "Gamma", None, None, None, NAN, None),
    ("k4", "Delta", "West", "Retail", None, 0.0, ""),
)


@pytest.mark.parametrize(
    ("when", "matching"),
    [
        ("{region: {eq: West}}", {"k1", "k4"}),
        ("{region: {ne: West}}", {"k2", "k3"}),  # a missing value is "not West"
        ("{region: {in: [West, East]}}", {"k1", "k2", "k4"}),
        ("{region: {in: []}}", set()),
        ("{region: {not_in: [West]}}", {"k2", "k3"}),
        ("{region: {not_in: []}}", {"k1", "k2", "k3", "k4"}),
        ("{business_type: {eq: ''}}", {"k4"}),  # empty text is a value, not a missing one
        ("{aum_usd: {gte: 10.5, lt: 5000000}}", {"k2"}),
        ("{aum_usd: {gt: 0}}", {"k1", "k2"}),
        ("{aum_usd: {lte: 0}}", {"k4"}),
        ("{aum_usd: {eq: 5000000}}", {"k1"}),  # numbers compare as written: 5000000.0 is "5000000"
        ("{aum_usd: {eq: '5000000.0'}}", set()),  # ... so this text never matches
        ("{aum_usd: {eq: '10.5'}}", {"k2"}),
        ("{aum_usd: {ne: 5000000}}", {"k2", "k3", "k4"}),
        ("{aum_usd: {in: [0, 10.5, abc]}}", {"k2", "k4"}),
        ("{aum_usd: {not_in: [0]}}", {"k1", "k2", "k3"}),
        ("{is_active: {eq: 'true'}}", {"k1", "k2", "k3", "k4"}),
        ("{is_active: {ne: 'true'}}", set()),
        ("{is_active: {in: ['false', '1']}}", set()),
        ("{region: {is_null: true}}", {"k3"}),
        ("{aum_usd: {not_null: true}}", {"k1", "k2", "k4"}),
        ("{client_name: {regex: '.*[Ff]und'}}", {"k1", "k2"}),
        ("{client_name: {regex: 'Fund'}}", set()),  # the whole value must match
        ("{client_name: {regex: '(?i)ALPHA.*'}}", {"k1"}),
        ("{client_name: {regex: '^(Gamma|Delta)$'}}", {"k3", "k4"}),
        ("{client_name: {regex: '[^ ]+'}}", {"k3", "k4"}),
        ("{client_name: {regex: '(?a)\\w+ \\w+'}}", {"k1", "k2"}),
        ("{client_name: {regex: '.{5}'}}", {"k3", "k4"}),
        ("{region: {regex: 'W.*', ne: Western}}", {"k1", "k4"}),
        ("{}", {"k1", "k2", "k3", "k4"}),
    ],
)
def test_each_operator_matches_what_the_engine_matches(warehouse, when, matching):
    got = both(warehouse, OPERATOR_BOOK, one_rule(when))
    assert {k for k, (_, _, by) in placed(got).items() if by == "probe"} == matching


def test_priority_then_file_order_exclusions_overrides_and_fallback(warehouse):
    rules = rules_of(
        """
        territories:
          rules:
            - {id: late, priority: 20, when: {region: {eq: West}}, assign: {region: Midwest, segment: Retail}}
            - {id: early-b, priority: 10, when: {segment: {eq: Retail}}, assign: {region: East, segment: Retail}}
            - {id: early-a, priority: 10, when: {region: {eq: West}}, assign: {region: North, segment: Retail}}
            - {id: own, priority: 99, assign: client}
        overrides:
          - {client_key: k3, assign: {region: South, segment: Institutional}, advisor: A@Example.com}
          - {client_key: k4, advisor: b@example.com}
          - {client_key: not-in-book, assign: {region: South, segment: Retail}}
        exclusions:
          - {client_key: k1, not_in: {region: East, segment: Retail}}
          - {client_key: k2, not_in: {region: East, segment: Institutional}}
        """
    )
    clients = book(
        ("k1", "A", "West", "Retail", None, NAN, None),  # early-b excluded -> early-a
        ("k2", "B", "East", "Institutional", None, NAN, None),  # own excluded -> fallback
        ("k3", "C", None, None, None, NAN, None),  # nothing matches, the override places it
        ("k4", "D", "West", "Institutional", None, NAN, None),  # early-a, advisor pinned
        ("k5", "E", None, "Retail", None, NAN, None),  # early-b
    )
    got = both(warehouse, clients, rules)
    assert placed(got) == {
        "k1": ("North", "Retail", "early-a"),
        "k2": (None, None, "fallback"),
        "k3": ("South", "Institutional", "override:k3"),
        "k4": ("North", "Retail", "early-a"),
        "k5": ("East", "Retail", "early-b"),
    }
    assert list(got.clients["pinned_advisor"]) == [None, None, "a@example.com", "b@example.com", None]


@pytest.mark.parametrize("precedence", ["rules", "source"])
def test_segmentation_tiers_and_the_derived_segment_feed_the_rules(warehouse, precedence):
    rules = rules_of(
        f"""
        segmentation:
          precedence: {precedence}
          tiers:
            - {{id: big, segment: Institutional, when: {{aum_usd: {{gte: 100}}}}}}
            - {{id: trusts, segment: Private Wealth, when: {{business_type: {{eq: Trust}}, segment: {{ne: Retail}}}}}}
        territories:
          rules:
            - {{id: pw, priority: 1, when: {{segment: {{eq: Private Wealth}}}}, assign: {{region: North, segment: Private Wealth}}}}
            - {{id: own, priority: 2, assign: client}}
        """
    )
    clients = book(
        ("k1", "A", "West", "Retail", None, 500.0, "Trust"),
        ("k2", "B", "West", "Retail", None, 5.0, "Trust"),  # tiers see the source segment: Retail, so no "trusts"
        ("k3", "C", "West", None, None, 5.0, "Trust"),
        ("k4", "D", "West", "Retail", None, NAN, None),
        ("k5", "E", "West", None, None, NAN, None),
    )
    got = both(warehouse, clients, rules)
    if precedence == "rules":
        assert list(got.clients["segment_rule"]) == ["big", None, "trusts", None, None]


def test_secondary_rows_for_parents_and_overlays(warehouse):
    rules = rules_of(
        """
        territories:
          rules:
            - {id: own, priority: 1, assign: client}
        overrides:
          - {client_key: k6, assign: {region: South, segment: Retail}}
        secondary:
          parent_org: true
          overlays:
            - {id: foundations, overlay: FOUNDATIONS, owner_role: F, when: {business_type: {eq: Foundation}}}
            - {id: everyone-west, overlay: WEST_DESK, owner_role: W, when: {region: {eq: West}}}
        """
    )
    clients = book(
        ("k1", "Atlas Holdings", "East", "Retail", None, NAN, "Foundation"),
        ("k2", "Atlas Sub", "West", "Retail", "atlas  HOLDINGS!", NAN, "Foundation"),  # parent by alias key
        ("k3", "Atlas Sub 2", "East", "Retail", "Atlas Holdings", NAN, None),  # same territory: no row
        ("k4", "Twin", "North", "Retail", None, NAN, None),
        ("k5", "Twin", "West", "Institutional", "Twin", NAN, None),  # names itself: the other Twin, k4
        ("k0", "Twin", None, None, None, NAN, None),  # an unplaced Twin first by key: k5's parent has no territory
        ("k6", "Kelvin \u212a", "East", "Retail", "\u0130stanbul", NAN, None),
        ("k7", "istanbul", "West", "Retail", "KELVIN k", NAN, None),  # the Kelvin sign lowers to k
        ("k8", "Orphan", "West", "Retail", "Nobody", NAN, None),
        ("k9", "\u0130STANBUL", "North", "Retail", "Kelvin K", NAN, None),
    )
    got = both(warehouse, clients, rules)
    assert len(got.secondary) > 0 and set(got.secondary["assigned_by"]) == {"parent_org", "foundations", "everyone-west"}


def test_quotes_backslashes_and_sql_in_rule_values_are_bound_as_values(warehouse):
    odd = "O'Brien \\ Sons \"Ltd\" '); DROP TABLE CORE.CLIENT_DIM; --"
    rules = rules_of(
        r"""
        segmentation:
          tiers:
            - {id: odd-tier, segment: "Seg 'with' \\ quote", when: {client_name: {eq: "O'Brien \\ Sons \"Ltd\" '); DROP TABLE CORE.CLIENT_DIM; --"}}}
        territories:
          rules:
            - id: odd-rule
              priority: 1
              when: {client_name: {in: ["a\\'b", "%s", "%(p0)s", "back\\\\slash"]}}
              assign: {region: "Re'gion \\", segment: "50% \\n"}
            - id: regex-rule
              priority: 2
              when: {client_name: {regex: "[\\]\\\\'-]+x"}}
              assign: {region: West, segment: Retail}
            - {id: own, priority: 3, assign: client}
        overrides:
          - {client_key: "k'3\\", assign: {region: "It's", segment: "C:\\path"}}
        """
    )
    clients = book(
        ("k1", odd, "West", "Retail", None, NAN, None),
        ("k2", "a\\'b", "West", "Retail", None, NAN, None),
        ("k3", "%s", "West", "Retail", None, NAN, None),
        ("k'3\\", "back\\\\slash", "West", "Retail", None, NAN, None),
        ("k5", "]\\'-x", "West", "Retail", None, NAN, None),
        ("k6", "%(p0)s", "West", "Retail", None, NAN, None),
        ("k7", "back\\slash", "West", "Retail", None, NAN, None),
    )
    got = both(warehouse, clients, rules)
    assert placed(got) == {
        "k'3\\": ("It's", "C:\\path", "override:k'3\\"),
        "k1": ("West", "Seg 'with' \\ quote", "own"),
        "k2": ("Re'gion \\", "50% \\n", "odd-rule"),
        "k3": ("Re'gion \\", "50% \\n", "odd-rule"),
        "k5": ("West", "Retail", "regex-rule"),
        "k6": ("Re'gion \\", "50% \\n", "odd-rule"),
        "k7": ("West", "Retail", "own"),
    }
    cursor = warehouse.cursor()
    cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
    assert cursor.fetchone() == (7,)  # still there


REGEX_NAMES = [
    "Kelvin", "\u212aelvin", "kelvin", "ſam", "Sam", "SAM", "a-b", "a]b", "a\\b", "a^b", "a[b", "ab", "a\nb", "x.y", "x+y",
    "Zürich Pension", "Épension fund", "pension", "PENSION plan", "my pensions", "_pension", "é", "É", "ß", "ẞ", "", "123", "\u0663\u0664",
]  # fmt: skip


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)kelvin", "(?i)sam", "(?ai)sam", "a[\\]\\\\^\\[-]b", "a[^\\]\\\\^-]b", "x\\.y", "x\\+y", "(?s)a.b", "a.b",
        "(?i).*PENSION.*", "(?ai).*\\bpension\\b.*", "(?a).*\\Bpension.*", "(?i)[a-z]+", "(?i)é", "(?i)ß", "(?x) a \\- b ",
        "(?:ab|a\\\\b)", "a*?b", "(a){1,3}b", "", "[\\s]*", "\\S*", "[^a-z]", "(?i)[^a-z]+", "\\d+",
    ],
)  # fmt: skip
def test_regular_expressions_match_what_python_matches(warehouse, pattern):
    clients = book(*[(f"k{i:02d}", name, "West", "Retail", None, NAN, None) for i, name in enumerate(REGEX_NAMES)])
    rules = rules_of(
        f"territories:\n  rules:\n    - {{id: probe, priority: 1, when: {{client_name: {{regex: {json.dumps(pattern)}}}}}, assign: client}}\n"
    )
    both(warehouse, clients, rules)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(?i).*\\bpension\\b.*", "\\b or \\B"),
        ("\\w+", "Unicode"),
        ("a(?=b).*", "look-ahead"),
        ("(?<!a)b", "look-around"),
        ("(a)\\1", "back-reference"),
        ("a++", "possessive"),
        ("(?>a)", "atomic"),
        ("(?i:a)b", "flags on a group"),
        ("a$b|c", "^ or $ inside"),
        ("(?m)a", "flag"),
        ("a{1001}", "1000"),
    ],
)
def test_a_regular_expression_without_an_exact_sql_twin_is_refused_naming_the_rule(pattern, why):
    rules = rules_of(
        "territories:\n  rules:\n    - {id: ok, priority: 1, assign: client}\n"
        f"    - {{id: my-regex-rule, priority: 2, when: {{client_name: {{regex: {json.dumps(pattern)}}}}}, assign: client}}\n"
    )
    with pytest.raises(NotCompilableError) as caught:
        compile_rules(rules, TABLE, {c: "text" for c in BOOK_COLUMNS})
    assert caught.value.rule_id == "my-regex-rule" and caught.value.key == "territories.rules[1].when.client_name.regex"
    assert "my-regex-rule" in str(caught.value) and why.lower() in str(caught.value).lower()


def test_other_constructs_without_an_exact_twin_are_refused_and_rule_errors_stay_rule_errors():
    columns = {**{c: "text" for c in BOOK_COLUMNS}, "aum_usd": "number", "opened_at": "other", "is_active": "boolean"}
    with pytest.raises(NotCompilableError, match="'on-dates'.*opened_at"):
        compile_rules(
            rules_of(
                "territories:\n  rules:\n    - {id: on-dates, priority: 1, when: {opened_at: {eq: '2026'}}, assign: client}\n"
            ),
            TABLE,
            columns,
        )
    with pytest.raises(NotCompilableError, match="'numbers-as-text'"):
        compile_rules(
            rules_of(
                "territories:\n  rules:\n    - {id: numbers-as-text, priority: 1, when: {aum_usd: {regex: '5.*'}}, assign: client}\n"
            ),
            TABLE,
            columns,
        )
    # what the engine refuses as a rules error, the compiler refuses the same way
    with pytest.raises(RulesError, match="unknown column 'nope'"):
        compile_rules(one_rule("{nope: {eq: x}}"), TABLE, columns)
    with pytest.raises(RulesError, match="not numbers"):
        compile_rules(one_rule("{region: {gt: 1}}"), TABLE, columns)
    with pytest.raises(RulesError, match="not numbers"):
        compile_rules(one_rule("{is_active: {gt: 1}}"), TABLE, columns)


def test_translated_patterns_leave_special_characters_outside_brackets():
    # backslash reads differently inside POSIX brackets (literal) and RE2 brackets (escape): never left there
    assert translate_regex("[\\\\a]") in ("^((\\\\|a))$", "^(([a]|\\\\))$", "^((a|\\\\))$")
    assert translate_regex("(?ai)k") == "^([Kk])$"
    assert translate_regex("(?i)k") == "^([Kk\u212a])$"  # Python folds the Kelvin sign too


def test_territory_ids_come_from_the_registry_and_unissued_targets_are_unassigned(warehouse):
    rules = rules_of(
        """
        territories:
          rules:
            - {id: own, priority: 1, assign: client}
        secondary:
          overlays:
            - {id: foundations, overlay: FOUNDATIONS, owner_role: F, when: {business_type: {eq: Foundation}}}
        """
    )
    clients = book(
        ("k1", "A", "West", "Retail", None, NAN, "Foundation"),
        ("k2", "B", "East", "Retail", None, NAN, None),
        ("k3", "C", None, "Retail", None, NAN, None),
    )
    registry = pd.DataFrame(
        {
            "territory_id": ["WES_RET", "UNASSIGNED", "FOUNDATIONS"],
            "region": ["West", None, None],
            "segment": ["Retail", None, None],
        }
    )
    load_table(warehouse, clients)
    load_table(warehouse, registry, "CORE.TERRITORY_DIM")
    got = place_in_warehouse(warehouse, rules, TABLE, territory_table="CORE.TERRITORY_DIM")
    assert list(got.clients["territory_id"]) == ["WES_RET", "UNASSIGNED", "UNASSIGNED"]
    assert list(got.secondary["territory_id"]) == ["FOUNDATIONS"]


def test_an_empty_book_and_empty_rules(warehouse):
    both(warehouse, book(), rules_of("territories:\n  rules:\n    - {id: own, priority: 1, assign: client}\n"))
    got = both(warehouse, OPERATOR_BOOK, rules_of("territories: {rules: []}\n"))
    assert set(got.clients["assigned_by"]) == {"fallback"}
