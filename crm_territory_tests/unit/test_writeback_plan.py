"""The write-back plan (a diff of the CRM's assignment against the current PRIMARY rows) and its batches."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_territory.logic.writeback.apply import outcome_rows
from crm_territory.logic.writeback.batches import bulk_records, idempotency_key, plan_batches
from crm_territory.logic.writeback.client import WritebackError
from crm_territory.logic.writeback.plan import build_plan, crm_state_from_records
from crm_territory.schemas import CrmWritebackLog, CrmWritebackPlan

NOW = pd.Timestamp("2026-12-06T10:00:00Z")


def fact(rows: list[tuple]) -> pd.DataFrame:
    """(client_key, territory_id, advisor, assignment_type, is_current, assigned_by)"""
    frame = pd.DataFrame(
        rows, columns=["client_key", "territory_id", "primary_advisor_email", "assignment_type", "is_current", "assigned_by"]
    )
    frame["advisor_reason"] = "kept"
    return frame


def xref(pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(source_system, source_record_id, client_key)"""
    return pd.DataFrame(pairs, columns=["source_system", "source_record_id", "client_key"])


def crm(rows: list[tuple]) -> pd.DataFrame:
    """(client_id, owner_email, territory_id, etag)"""
    return crm_state_from_records([dict(zip(["client_id", "owner_email", "territory_id", "etag"], r)) for r in rows])


ADVISORS = pd.DataFrame(
    {
        "advisor_email": ["ann@x.com", "bob@x.com", "gone@x.com"],
        "active": [True, True, False],
    }
)

FACT = fact(
    [
        ("crm_api:1", "NOR_INS", "ann@x.com", "PRIMARY", True, "r1"),  # already right: no row
        ("crm_api:1", "OVL_A", None, "SECONDARY", True, "ovl"),  # secondary rows are not written
        ("crm_api:2", "NOR_INS", "bob@x.com", "PRIMARY", True, "r1"),  # owner changes
        ("crm_api:3", "SOU_FAM", "ann@x.com", "PRIMARY", True, "r2"),  # territory changes
        ("crm_api:4", "SOU_FAM", "bob@x.com", "PRIMARY", True, "r2"),  # both change; two CRM records
        ("crm_api:5", "WES_INS", "gone@x.com", "PRIMARY", True, "r3"),  # inactive advisor: refused
        ("crm_api:6", "WES_INS", "nobody@x.com", "PRIMARY", True, "r3"),  # unknown advisor: refused
        ("crm_api:7", "WES_INS", "ann@x.com", "PRIMARY", False, "r3"),  # inactive client: not current, skipped
        ("csv_drop:8", "WES_INS", "ann@x.com", "PRIMARY", True, "r3"),  # no CRM record
    ]
)
XREF = xref(
    [
        ("crm_api", "1", "crm_api:1"),
        ("crm_api", "2", "crm_api:2"),
        ("crm_api", "3", "crm_api:3"),
        ("crm_api", "4", "crm_api:4"),
        ("crm_api", "4b", "crm_api:4"),
        ("crm_api", "5", "crm_api:5"),
        ("crm_api", "6", "crm_api:6"),
        ("crm_api", "7", "crm_api:7"),
        ("csv_drop", "8", "csv_drop:8"),
        ("csv_drop", "4", "crm_api:4"),  # a file's record with the same id is not the CRM's record 4
    ]
)
CRM = crm(
    [
        ("1", "Ann@X.com ", "NOR_INS", "e1"),  # case and spaces do not make a change
        ("2", "ann@x.com", "NOR_INS", "e2"),
        ("3", "ann@x.com", None, "e3"),
        ("4", None, "NOR_INS", "e4"),
        ("4b", "bob@x.com", "NOR_INS", "e4b"),
        ("5", "ann@x.com", None, "e5"),
        ("6", "ann@x.com", None, "e6"),
        ("7", "ann@x.com", None, "e7"),
        ("99", "ann@x.com", None, "e99"),  # a CRM record the engine does not hold: left alone
    ]
)


def test_plan_lists_exactly_the_records_to_change_old_to_new() -> None:
    plan = build_plan(CRM, FACT, XREF, ADVISORS, NOW)
    CrmWritebackPlan.validate(plan)
    got = plan[
        ["crm_client_id", "owner_before", "owner_after", "territory_before", "territory_after", "change", "etag", "status"]
    ]
    expected = [
        ["2", "ann@x.com", "bob@x.com", "NOR_INS", "NOR_INS", "owner", "e2", "send"],
        ["3", "ann@x.com", "ann@x.com", None, "SOU_FAM", "territory", "e3", "send"],
        ["4", None, "bob@x.com", "NOR_INS", "SOU_FAM", "owner and territory", "e4", "send"],
        ["4b", "bob@x.com", "bob@x.com", "NOR_INS", "SOU_FAM", "territory", "e4b", "send"],
        ["5", "ann@x.com", "gone@x.com", None, "WES_INS", "owner and territory", "e5", "refused"],
        ["6", "ann@x.com", "nobody@x.com", None, "WES_INS", "owner and territory", "e6", "refused"],
    ]
    assert got.astype(object).where(got.notna(), None).values.tolist() == expected
    assert plan.set_index("crm_client_id").loc["4", "assigned_by"] == "r2"
    reasons = plan.set_index("crm_client_id")["refusal_reason"]
    assert reasons["5"] == "advisor gone@x.com is not active"
    assert reasons["6"] == "advisor nobody@x.com is not in advisor_dim"
    assert plan["plan_id"].nunique() == 1


def test_plan_id_is_stable_and_moves_with_what_would_be_sent() -> None:
    first = build_plan(CRM, FACT, XREF, ADVISORS, NOW)
    again = build_plan(CRM.sample(frac=1, random_state=3), FACT, XREF, ADVISORS, NOW + pd.Timedelta("1h"))
    assert first["plan_id"].iloc[0] == again["plan_id"].iloc[0]
    moved = CRM.copy()
    moved.loc[moved["crm_client_id"] == "2", "etag"] = "e2-new"  # the CRM changed the record: a new plan
    assert build_plan(moved, FACT, XREF, ADVISORS, NOW)["plan_id"].iloc[0] != first["plan_id"].iloc[0]


def test_nothing_to_change_is_an_empty_plan() -> None:
    in_step = crm([("1", "ann@x.com", "NOR_INS", "e1")])
    plan = build_plan(in_step, FACT, XREF, ADVISORS, NOW)
    assert plan.empty and list(plan.columns) == list(CrmWritebackPlan.to_schema().columns)
    CrmWritebackPlan.validate(plan)


def test_a_client_without_an_advisor_is_refused_not_cleared() -> None:
    no_advisor = fact([("crm_api:3", "UNASSIGNED", None, "PRIMARY", True, "fallback")])
    plan = build_plan(CRM, no_advisor, XREF, ADVISORS, NOW)
    assert plan[["crm_client_id", "status"]].values.tolist() == [["3", "refused"]]
    assert plan["refusal_reason"].iloc[0] == "no advisor placed for the client (kept)"


def big_plan(n: int) -> pd.DataFrame:
    ids = [f"c{i:05d}" for i in range(n)]
    facts = fact([(f"k{i}", "T1", "ann@x.com", "PRIMARY", True, "r") for i in range(n)])
    refs = xref([("crm_api", c, f"k{i}") for i, c in enumerate(ids)])
    state = crm([(c, "bob@x.com", "T1", f"e{i}") for i, c in enumerate(ids)])
    return build_plan(state, facts, refs, ADVISORS, NOW)


def test_batches_are_200_in_plan_order_with_deterministic_keys() -> None:
    plan = big_plan(450)
    batches = list(plan_batches(plan))
    assert [len(b.rows) for b in batches] == [200, 200, 50]
    assert [b.number for b in batches] == [1, 2, 3]
    assert pd.concat([b.rows for b in batches])["crm_client_id"].tolist() == plan["crm_client_id"].tolist()
    plan_id = plan["plan_id"].iloc[0]
    assert [b.batch_id for b in batches] == [f"{plan_id}-00001", f"{plan_id}-00002", f"{plan_id}-00003"]
    again = list(plan_batches(plan))
    assert [b.idempotency_key for b in again] == [b.idempotency_key for b in batches]
    assert len({b.idempotency_key for b in batches}) == 3
    assert idempotency_key("x") != idempotency_key("y")
    record = bulk_records(batches[2].rows)[0]
    assert record == {"client_id": "c00400", "owner_email": "ann@x.com", "territory_id": "T1", "if_match": "e400"}


def test_refused_rows_are_never_in_a_batch_and_sizes_are_bounded() -> None:
    plan = build_plan(CRM, FACT, XREF, ADVISORS, NOW)
    sent = pd.concat([b.rows for b in plan_batches(plan, size=2)])
    assert sent["crm_client_id"].tolist() == ["2", "3", "4", "4b"]
    with pytest.raises(ValueError, match="1 to 200"):
        list(plan_batches(plan, size=201))
    assert list(plan_batches(build_plan(crm([]), FACT, XREF, ADVISORS, NOW))) == []


def test_outcomes_keep_both_versions_and_refuse_answers_out_of_order() -> None:
    rows = big_plan(2)
    results = [
        {"client_id": "c00000", "status": "ok", "etag_before": "e0", "etag_after": "n0", "error": None},
        {"client_id": "c00001", "status": "conflict", "etag_before": "crm-now", "etag_after": None, "error": "stale"},
    ]
    out = outcome_rows(rows, results, "p-00001", "p", "apply", NOW)
    CrmWritebackLog.validate(out)
    assert out[["crm_client_id", "status", "etag_before", "etag_after"]].values.tolist() == [
        ["c00000", "ok", "e0", "n0"],
        ["c00001", "conflict", "e1", "crm-now"],
    ]
    with pytest.raises(WritebackError, match="not in the order sent"):
        outcome_rows(rows, results[::-1], "p-00001", "p", "apply", NOW)
