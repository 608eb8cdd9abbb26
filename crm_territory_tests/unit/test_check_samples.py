"""The WARN checks name the clients they are about: exactly the affected ones, with the right count."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from crm_territory.defs.matching.checks import client_dim_advisor_email_present, client_dim_unknown_region_or_segment
from crm_territory.defs.matching.client_dim import gone_clients
from crm_territory.defs.sources.raw_clients import _with_sent_name
from crm_territory.logic.placement.capacity import clients_of_advisors
from crm_territory.wiring.checks import client_sample, violations_result
from crm_territory.wiring.metadata import SAMPLE_ROWS


def _rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in ``markdown``, as header -> cell."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-: ")]
    header, *body = cells
    return [dict(zip(header, row)) for row in body]


def _client_dim(n: int) -> pd.DataFrame:
    """``n`` clients c000..; every 3rd has an unknown region, every 4th no advisor e-mail, every 5th is inactive."""
    i = pd.RangeIndex(n)
    unknown = i % 3 == 0
    no_email = i % 4 == 0
    issues = pd.Series([None] * n, dtype=object)
    issues[unknown] = "unknown region 'Atlantis'"
    issues[no_email & ~unknown] = "no advisor e-mail"
    issues[no_email & unknown] = "unknown region 'Atlantis'; no advisor e-mail"
    return pd.DataFrame(
        {
            "client_key": [f"c{k:03d}" for k in i],
            "client_name": [f"Client {k} Ltd" for k in i],
            "region": pd.Series(["West"] * n, dtype=object).where(~unknown, None),
            "segment": "Retail",
            "primary_advisor_email": pd.Series([f"adv{k % 7}@x.com" for k in i], dtype=object).where(~no_email, None),
            "is_active": i % 5 != 0,
            "source_system": "crm_api",
            "source_record_id": [str(1000 + k) for k in i],
            "data_issues": issues,
        }
    )


def test_unknown_region_lists_exactly_the_affected_clients_with_their_spelling_and_count():
    dim = _client_dim(90)
    result = client_dim_unknown_region_or_segment(client_dim=dim)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    expected = sorted(f"c{k:03d}" for k in range(0, 90, 3))  # 30 clients, by construction
    assert result.metadata["clients_affected"].value == 30 == result.metadata["clients_unassigned"].value
    sample = result.metadata["affected_clients"].value
    rows = _rows(sample)
    assert [r["client_key"] for r in rows] == expected[:SAMPLE_ROWS]  # the first 20 by key
    assert rows[1] == {
        "client_key": "c003",
        "client_name": "Client 3 Ltd",
        "source_system": "crm_api",
        "data_issues": "unknown region 'Atlantis'",
    }
    assert f"_{SAMPLE_ROWS} of 30 clients_" in sample
    # the spellings to add and the next step stay
    assert "Atlantis" in result.metadata["sample"].value and "region_aliases.csv" in result.metadata["next_step"].value


def test_advisor_email_lists_the_active_clients_without_one_and_why():
    dim = _client_dim(40)
    result = client_dim_advisor_email_present(client_dim=dim)
    # every 4th client has no e-mail; of those, every 5th overall is inactive (0, 20): 10 - 2 = 8 active
    expected = [f"c{k:03d}" for k in range(0, 40, 4) if k % 5 != 0]
    assert result.metadata["clients_affected"].value == len(expected) == 8
    rows = _rows(result.metadata["affected_clients"].value)
    assert [r["client_key"] for r in rows] == expected
    assert {r["issue"] for r in rows} == {"no advisor e-mail"}
    assert rows[0]["source_record_id"] == "1004" and rows[0]["client_name"] == "Client 4 Ltd"
    assert "_8 client(s)_" in result.metadata["affected_clients"].value


def test_a_passing_check_lists_no_clients():
    dim = _client_dim(10).assign(region="West", data_issues=None, primary_advisor_email="a@x.com")
    for check in (client_dim_unknown_region_or_segment, client_dim_advisor_email_present):
        result = check(client_dim=dim)
        assert result.passed
        assert "affected_clients" not in result.metadata and "clients_affected" not in result.metadata


def test_gone_clients_are_named_as_the_previous_client_dim_had_them():
    previous = _client_dim(6)
    gone = pd.Index(["c004", "c001"])
    rows = gone_clients(previous, gone)
    assert list(rows["client_key"]) == ["c001", "c004"]
    assert list(rows["client_name"]) == ["Client 1 Ltd", "Client 4 Ltd"]
    assert list(rows["source_record_id"]) == ["1001", "1004"]
    # through the check factory: the count is the clients gone, the sample names them
    result = violations_result(
        rows, counted="clients_gone", blocking_severity=dg.AssetCheckSeverity.WARN, next_step="put the drop back"
    )
    assert result.metadata["clients_gone"].value == 2
    assert [r["client_key"] for r in _rows(result.metadata["sample"].value)] == ["c001", "c004"]
    # an older stored client_dim without source_record_id still names them
    assert list(gone_clients(previous.drop(columns="source_record_id"), gone)["client_name"]) == ["Client 1 Ltd", "Client 4 Ltd"]
    assert gone_clients(None, gone).empty


def _fact() -> pd.DataFrame:
    """over@ holds 25 current clients, busy@ 3, ok@ 2; former and SECONDARY rows of over@ do not count."""
    rows = [(f"k{i:02d}", "T1", "over@x.com", "PRIMARY", True, "kept") for i in range(25)]
    rows += [(f"b{i}", "T2", "busy@x.com", "PRIMARY", True, "assigned") for i in range(3)]
    rows += [(f"o{i}", "T2", "ok@x.com", "PRIMARY", True, "kept") for i in range(2)]
    rows += [("z1", "T1", "over@x.com", "PRIMARY", False, "kept"), ("o0", "T1", "over@x.com", "SECONDARY", True, "overlay")]
    return pd.DataFrame(
        rows, columns=["client_key", "territory_id", "primary_advisor_email", "assignment_type", "is_current", "advisor_reason"]
    )


def test_the_capacity_check_lists_the_clients_of_the_over_capacity_advisors():
    fact = _fact()
    dim = pd.DataFrame({"client_key": fact["client_key"].unique()}).assign(client_name=lambda d: "Name " + d["client_key"])
    affected = clients_of_advisors(fact, pd.Series(["over@x.com", "busy@x.com"]), dim)
    expected = sorted([f"k{i:02d}" for i in range(25)] + ["b0", "b1", "b2"])
    assert list(affected["client_key"]) == expected  # not z1 (former), not o0 (SECONDARY of over@, PRIMARY of ok@)
    assert set(affected["primary_advisor_email"]) == {"over@x.com", "busy@x.com"}
    assert affected.loc[affected["client_key"] == "b1", "client_name"].item() == "Name b1"

    sample = client_sample(affected, spread_by="primary_advisor_email").value
    rows = _rows(sample)
    # spread: the advisor with 3 clients is not crowded out by the one with 25
    assert {r["client_key"] for r in rows if r["primary_advisor_email"] == "busy@x.com"} == {"b0", "b1", "b2"}
    assert len(rows) == SAMPLE_ROWS and {r["client_key"] for r in rows} <= set(expected)
    assert f"_{SAMPLE_ROWS} of 28 clients_" in sample
    assert clients_of_advisors(fact, pd.Series([], dtype=object), dim).empty


def test_quarantined_rows_show_the_name_they_were_sent_under():
    rows = pd.DataFrame(
        {
            "source_system": ["csv_drop", "csv_drop", "salesforce"],
            "source_file": ["late.csv", "late.csv", "report.csv"],
            "source_row": [2, 3, 7],
            "source_record_id": [None, "41", "x9"],
            "reason": ["missing client_id", "missing client_name", "missing client_id"],
            "original_values": [
                json.dumps({"client_id": None, "client_name": "No Id Co"}),
                json.dumps({"client_id": "41", "client_name": ""}),
                json.dumps({"Account Name": "Acme"}),  # a layout's own column names: no name to show
            ],
        }
    )
    sample = _with_sent_name(rows)
    assert list(sample.columns) == ["source_system", "source_file", "source_row", "source_record_id", "client_name", "reason"]
    assert sample["client_name"].tolist() == ["No Id Co", None, None]
