"""placement_differences: the warehouse placement vs assignments_fact, compared inside the warehouse (fakesnow).

Each kind of difference the check placements_match_pandas_engine reports is found, counted and sampled; equal
tables give none. The tables are the project's DDL, loaded through the connector's ``write_pandas``.
"""

from collections.abc import Iterator

import pandas as pd
import pytest
import snowflake.connector.pandas_tools as pandas_tools

from crm_territory.logic.rules.sql import placement_differences
from crm_territory.schemas import TABLES, WAREHOUSE_TABLES, conform
from crm_territory_tests.benchmarks.rules_sql import fake_warehouse

PLACEMENT = "CORE.CLIENT_PLACEMENT_IN_WAREHOUSE"
FACT = "CORE.ASSIGNMENTS_FACT"
VERSION = "0123456789ab"


@pytest.fixture(scope="module")
def warehouse() -> Iterator:
    with fake_warehouse() as connection:
        yield connection


def load(connection, spec, rows: list[dict]) -> None:
    connection.cursor().execute(f"DELETE FROM {spec.warehouse_name}")
    frame = conform(pd.DataFrame(rows, columns=list(spec.model.to_schema().columns)), spec.model)
    pandas_tools.write_pandas(
        connection, frame.rename(columns=str.upper), spec.warehouse_table, schema=spec.warehouse_schema,
        quote_identifiers=True, use_logical_type=True,
    )  # fmt: skip


def placed(key: str, territory: str, by: str, kind: str = "PRIMARY", **extra) -> dict:
    row = {"client_key": key, "assignment_type": kind, "territory_id": territory, "assigned_by": by}
    return {"rules_version": VERSION, **row, **extra}


def fact_row(key: str, territory: str, by: str, kind: str = "PRIMARY", **extra) -> dict:
    row = {"client_key": key, "territory_id": territory, "assignment_type": kind, "assigned_by": by}
    return {"is_current": True, "rules_version": VERSION, **row, **extra}


SAME_PLACEMENT = [
    placed("c1", "NOR_INS", "by-region", segment_rule="tier-a", pinned_advisor="a@example.com"),
    placed("c1", "FOUNDATIONS", "foundations", "SECONDARY", overlay="FOUNDATIONS"),
    placed("c2", "UNASSIGNED", "fallback"),
]
SAME_FACT = [
    fact_row("c1", "NOR_INS", "by-region", segment_rule="tier-a", primary_advisor_email="a@example.com"),
    fact_row("c1", "FOUNDATIONS", "foundations", "SECONDARY"),
    fact_row("c2", "UNASSIGNED", "fallback", primary_advisor_email="b@example.com"),  # an advisor, but none pinned
]


def test_equal_placements_differ_nowhere(warehouse):
    load(warehouse, WAREHOUSE_TABLES["client_placement_in_warehouse"], SAME_PLACEMENT)
    load(warehouse, TABLES["assignments_fact"], SAME_FACT)
    found = placement_differences(warehouse, PLACEMENT, FACT)
    assert (found.warehouse_rows, found.fact_rows, found.differing_rows) == (3, 3, 0)
    assert found.sample.empty and found.by_difference.empty


def test_every_kind_of_difference_is_found_counted_and_sampled(warehouse):
    load(
        warehouse,
        WAREHOUSE_TABLES["client_placement_in_warehouse"],
        [
            *SAME_PLACEMENT,
            placed("d1", "WES_RET", "rule-x"),  # only here
            placed("d3", "WES_RET", "rule-y"),
            placed("d4", "WES_RET", "rule-x", segment_rule="tier-a"),
            placed("d5", "WES_RET", "rule-x", rules_version="ffffffffffff"),
            placed("d6", "WES_RET", "override:d6", pinned_advisor="pinned@example.com"),
            placed("d7", "NOR_INS", "rule-x"),  # the fact has it in another territory: one row on each side
        ],
    )
    load(
        warehouse,
        TABLES["assignments_fact"],
        [
            *SAME_FACT,
            fact_row("d2", "WES_RET", "rule-x"),  # only here
            fact_row("d3", "WES_RET", "rule-z"),
            fact_row("d4", "WES_RET", "rule-x"),
            fact_row("d5", "WES_RET", "rule-x"),
            fact_row("d6", "WES_RET", "override:d6", primary_advisor_email="other@example.com"),
            fact_row("d7", "WES_RET", "rule-x"),
        ],
    )
    found = placement_differences(warehouse, PLACEMENT, FACT, sample_rows=5)
    assert (found.warehouse_rows, found.fact_rows, found.differing_rows) == (9, 9, 8)
    assert dict(zip(found.by_difference["difference"], found.by_difference["rows"])) == {
        "only in the warehouse placement": 2,  # d1, d7 in NOR_INS
        "only in assignments_fact": 2,  # d2, d7 in WES_RET
        "assigned_by": 1,
        "segment_rule": 1,
        "rules_version": 1,
        "pinned advisor": 1,
    }
    # the sample: the first rows by client_key, each side's values
    assert list(found.sample["client_key"]) == ["d1", "d2", "d3", "d4", "d5"]
    d3 = found.sample.set_index("client_key").loc["d3"]
    assert (d3["warehouse_assigned_by"], d3["fact_assigned_by"], d3["difference"]) == ("rule-y", "rule-z", "assigned_by")


def test_names_are_checked_before_they_reach_the_sql(warehouse):
    with pytest.raises(ValueError, match="not a plain"):
        placement_differences(warehouse, "CORE.ASSIGNMENTS_FACT; DROP TABLE CORE.CLIENT_DIM", FACT)
