"""SQL vs pandas: the rules compiled to Snowflake SQL place the sample book and a generated 100k book exactly as the
pandas engine does, in fakesnow (the real connector over DuckDB), with the active rules and every example file.

The pandas engine is the reference; the comparison covers every column of the PRIMARY and SECONDARY placements,
row by row sorted by client_key, plus rules_version and the territory_id each placement maps to in TERRITORY_DIM.
"""

from collections.abc import Iterator

import pandas as pd
import pytest

from crm_territory.logic.placement.pipeline import build_territories
from crm_territory.logic.placement.territories import territory_ids
from crm_territory.logic.reference.reference_data import load_reference_data
from crm_territory.logic.rules.engine import evaluate
from crm_territory.logic.rules.sql import NotCompilableError, compile_rules, place_in_warehouse, warehouse_columns
from crm_territory_tests.benchmarks.rules_sql import (
    CLIENT_DIM_TABLE,
    REPO_ROOT,
    TERRITORY_TABLE,
    ascii_variant,
    comparable,
    differences,
    fake_warehouse,
    generated_client_dim,
    load_table,
    rules_files,
    sample_client_dim,
)

pytestmark = pytest.mark.integration

GENERATED_CLIENTS = 100_000
RULES = rules_files()


@pytest.fixture(scope="module")
def warehouse() -> Iterator:
    with fake_warehouse() as connection:
        yield connection


# The worked example's own clients (docs/rules.md), appended to the generated book so that every construct of the
# example file fires at scale too: its override and exclusion keys, the Atlas group, a pension plan, a trust
# without a region (the generator makes none of these).
WORKED_CLIENTS = [
    ("csv_drop:1", "Atlas Capital Partners", "Northeast", "Institutional", "Atlas Holdings", 1_000_000.0, None),
    ("csv_drop:2", "Beacon Wealth Management", "Northeast", "Retail", "Beacon Group", 2_000_000.0, "Individual"),
    ("csv_drop:3", "Crescent Advisory Group", "Midwest", "Institutional", "Crescent Holdings", None, None),
    ("csv_drop:4", "Atlas Holdings", "Southeast", "Retail", None, 300_000_000.0, "Corporation"),
    ("csv_drop:5", "Teachers Pension Fund", "Southwest", "Institutional", None, 10_000_000.0, None),
    ("csv_drop:6", "Dune Trust", None, None, None, 10_000_000.0, "Trust"),
    ("csv_drop:7", "Eagle Retail", "Northeast", "Retail", "atlas  HOLDINGS", 500_000.0, "Foundation"),
    ("csv_drop:8", "Fjord", "Southwest", "Retail", None, None, None),
    ("csv_drop:9", "Gale", "Northwest", "Retail", "Fjord", 3_000_000.0, None),
    ("csv_drop:10", "Atlas Energy", "West", "Retail", "Atlas Holdings", 7_000_000.0, "Individual"),  # not overridden
]


def with_worked_clients(clients: pd.DataFrame) -> pd.DataFrame:
    """``clients`` plus WORKED_CLIENTS (their other columns copied from the book's first rows)."""
    extra = clients.head(len(WORKED_CLIENTS)).copy()
    columns = ["client_key", "client_name", "region", "segment", "parent_org", "aum_usd", "business_type"]
    for i, row in enumerate(WORKED_CLIENTS):
        for column, value in zip(columns, row):
            extra.iloc[i, extra.columns.get_loc(column)] = value
    return pd.concat([clients, extra], ignore_index=True).sort_values("client_key", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def books() -> dict[str, pd.DataFrame]:
    return {"sample": sample_client_dim(), "generated": with_worked_clients(generated_client_dim(GENERATED_CLIENTS))}


# Example files the compiler refuses as committed, and the rule it names: the worked example's pension-plans matches
# "(?i).*\bpension\b.*", a Unicode word boundary in Python that Snowflake's ASCII \b would not reproduce.
REFUSED_AS_COMMITTED = {"examples/worked_example.yaml": "pension-plans"}


def compilable(name: str, columns: dict[str, str]):
    """The rules to compare: the file as committed, or, for a file the compiler refuses (the refusal checked), the
    same file with its regular expressions made ASCII."""
    if name not in REFUSED_AS_COMMITTED:
        return RULES[name]
    with pytest.raises(NotCompilableError) as refused:
        compile_rules(RULES[name], CLIENT_DIM_TABLE, columns)
    assert refused.value.rule_id == REFUSED_AS_COMMITTED[name] and "\\b" in refused.value.reason
    return ascii_variant(name)


@pytest.mark.parametrize("book", ["sample", "generated"])
@pytest.mark.parametrize("rules_name", sorted(RULES))
def test_sql_places_every_client_as_the_pandas_engine_does(warehouse, books, book, rules_name):
    clients = books[book]
    rules = compilable(rules_name, warehouse_columns(warehouse, CLIENT_DIM_TABLE))
    expected = evaluate(clients, rules)
    # the registry the pandas placement needs, issued as territory_dim issues it; the SQL reads it to name territory_ids
    registry = build_territories(expected, rules, load_reference_data(REPO_ROOT / "data" / "reference"), None,
                                 pd.Timestamp("2026-11-02", tz="UTC"))  # fmt: skip
    load_table(warehouse, "client_dim", clients)
    load_table(warehouse, "territory_dim", registry)

    got = place_in_warehouse(warehouse, rules, CLIENT_DIM_TABLE, territory_table=TERRITORY_TABLE)

    assert differences(expected, got) == []
    assert len(got.clients) == len(clients) and set(got.clients["rules_version"]) == {rules.version}
    primary = comparable(expected.clients, ["client_key", "target_region", "target_segment"])
    want_ids = territory_ids(primary["target_region"], primary["target_segment"], registry)
    assert list(got.clients["territory_id"]) == list(want_ids)
    secondary = comparable(expected.secondary, ["client_key", "target_region", "target_segment", "overlay"])
    want_secondary = territory_ids(secondary["target_region"], secondary["target_segment"], registry)
    want_secondary = secondary["overlay"].where(secondary["overlay"].notna(), want_secondary)
    assert list(got.secondary["territory_id"]) == list(want_secondary)
    if book == "generated" and rules_name != "active":  # the example's rules all fire on a large book
        fired = set(got.clients["assigned_by"]) | set(got.secondary["assigned_by"])
        constructs = {r.id for r in rules.territories.rules} | {o.id for o in rules.secondary.overlays}
        constructs |= {"override:" + o.client_key for o in rules.overrides if o.assign} | {"parent_org", "fallback"}
        assert constructs - fired == set()
        assert got.clients["pinned_advisor"].notna().sum() == len(rules.overrides)
