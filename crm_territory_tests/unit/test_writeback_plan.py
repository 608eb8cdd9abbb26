"""The write-back plan (a diff of the CRM's assignment against the current PRIMARY rows) and its batches."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_territory.logic.ingest.api_snapshot import merge_snapshot, records_to_frame
from crm_territory.logic.writeback.apply import outcome_rows
from crm_territory.logic.writeback.batches import bulk_records, idempotency_key, plan_batches
from crm_territory.logic.writeback.client import WritebackError
from crm_territory.logic.writeback.plan import build_plan, crm_state_from_records, crm_state_from_snapshot, records_without_etag
from crm_territory.schemas import CrmApiClients, CrmWritebackLog, CrmWritebackPlan
from crm_territory.storage.csv_tables import CsvTables

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


def api_records(rows: list[tuple], updated_at: str = "2026-12-01T00:00:00Z") -> list[dict]:
    """/clients records as the mock CRM serves them: (client_id, owner_email, territory_id, etag) and the rest."""
    return [
        {
            "client_id": client_id,
            "client_name": f"Client {client_id}",
            "region": "Northeast",
            "advisor_email": "ann@x.com",
            "status": "active",
            "updated_at": updated_at,
            "owner_email": owner,
            "territory_id": territory,
            "assignment_version": 0 if territory is None else 1,
            "etag": etag,
        }
        for client_id, owner, territory, etag in rows
    ]


def snapshot(rows: list[tuple], pulled_at: pd.Timestamp = NOW, updated_at: str = "2026-12-01T00:00:00Z") -> pd.DataFrame:
    """The crm_api_clients snapshot a pull of these records leaves."""
    return records_to_frame([(1, api_records(rows, updated_at))], pulled_at)


def crm(rows: list[tuple]) -> pd.DataFrame:
    """(client_id, owner_email, territory_id, etag): the CRM's state as of the latest pull (the snapshot)."""
    return crm_state_from_snapshot(snapshot(rows))


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


def test_the_snapshot_keeps_the_crms_assignment_of_every_record_as_sent() -> None:
    pulled = snapshot([("1", "ann@x.com", None, "b-1"), ("2", None, "NOR_INS", "b-2")])
    CrmApiClients.validate(pulled)
    got = pulled[["client_id", "crm_owner_email", "crm_territory_id", "crm_assignment_version", "crm_etag"]]
    assert got.astype(object).where(got.notna(), None).values.tolist() == [
        ["1", "ann@x.com", None, "0", "b-1"],
        ["2", None, "NOR_INS", "1", "b-2"],
    ]
    # the state read from the snapshot is the one read from the same records over /clients
    records = api_records([("1", "ann@x.com", None, "b-1"), ("2", None, "NOR_INS", "b-2")])
    pd.testing.assert_frame_equal(crm_state_from_snapshot(pulled), crm_state_from_records(records))


def test_an_incremental_pull_brings_the_latest_etag_and_the_plan_follows_it() -> None:
    full = snapshot([("2", "ann@x.com", "NOR_INS", "e2"), ("3", "ann@x.com", None, "e3")])
    # a CRM user moved record 3 since: the incremental pull (the change feed's too) brings it with its new etag
    later = NOW + pd.Timedelta("1h")
    edit = records_to_frame([(1, api_records([("3", "bob@x.com", "SOU_FAM", "e3-new")], "2026-12-06T10:30:00Z"))], later)
    merged = merge_snapshot(full, edit)
    CrmApiClients.validate(merged)
    assert crm_state_from_snapshot(merged).set_index("crm_client_id")["etag"].to_dict() == {"2": "e2", "3": "e3-new"}
    plan = build_plan(crm_state_from_snapshot(merged), FACT, XREF, ADVISORS, later).set_index("crm_client_id")
    assert plan.loc["3", ["owner_before", "territory_before", "etag", "change"]].tolist() == [
        "bob@x.com",
        "SOU_FAM",
        "e3-new",
        "owner",
    ]
    assert plan.loc["2", "etag"] == "e2"  # not re-sent by the CRM: the etag of the full pull still holds


def test_a_snapshot_stored_before_the_writeback_fields_still_loads_and_its_records_wait_for_a_pull(tmp_path) -> None:
    """A crm_api_clients.csv written before the snapshot kept the CRM's assignment reads back with those columns
    empty; the plan leaves those records out (no etag: nothing can be sent conditionally) and counts them."""
    store = CsvTables(tmp_path)
    path = store.path_for("crm_api_clients")
    path.parent.mkdir(parents=True)
    path.write_text(
        '"client_id","client_name","region","segment","parent_org","advisor_email","status","aum_usd","business_type",'
        '"updated_at","source_page","pulled_at"\n'
        '"2","Client 2","Northeast",,,"ann@x.com","active",,,"2026-11-01T00:00:00Z",1,2026-11-01T06:00:00Z\n'
    )
    old = store.read("crm_api_clients")
    CrmApiClients.validate(old)
    assert old[["crm_owner_email", "crm_territory_id", "crm_assignment_version", "crm_etag"]].isna().all().all()
    assert crm_state_from_snapshot(old).empty and records_without_etag(old) == 1
    assert build_plan(crm_state_from_snapshot(old), FACT, XREF, ADVISORS, NOW).empty
    # an incremental pull that re-sends the record brings its etag: it can be planned again
    pulled = records_to_frame([(1, api_records([("2", "ann@x.com", "NOR_INS", "e2")], "2026-12-01T00:00:00Z"))], NOW)
    merged = merge_snapshot(old, pulled)
    assert records_without_etag(merged) == 0
    assert build_plan(crm_state_from_snapshot(merged), FACT, XREF, ADVISORS, NOW)["crm_client_id"].tolist() == ["2"]


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


@pytest.mark.parametrize("chunk_rows", [1, 7, 199, 200, 201, 1000])
def test_a_plan_read_in_chunks_gives_the_same_batches_as_the_whole_plan(chunk_rows: int, tmp_path) -> None:
    plan = big_plan(1203)
    plan.loc[[5, 600, 1202], "status"] = "refused"  # refused rows fall in several chunks
    whole = [(b.batch_id, b.rows["crm_client_id"].tolist()) for b in plan_batches(plan)]
    chunks = (plan.iloc[i : i + chunk_rows] for i in range(0, len(plan), chunk_rows))
    assert [(b.batch_id, b.rows["crm_client_id"].tolist()) for b in plan_batches(chunks)] == whole
    assert [len(rows) for _, rows in whole] == [200] * 6
    # the refused rows are batched the same way, under their own ids
    refused = list(plan_batches((plan.iloc[i : i + chunk_rows] for i in range(0, len(plan), chunk_rows)), status="refused"))
    plan_id = plan["plan_id"].iloc[0]
    assert [(b.batch_id, b.rows["crm_client_id"].tolist()) for b in refused] == [
        (f"{plan_id}-refused-00001", ["c00005", "c00600", "c01202"])
    ]
    # and the published table streamed from its CSV gives those chunks back, row for row
    tables = CsvTables(tmp_path)
    tables.write("crm_writeback_plan", plan)
    streamed = list(tables.iter_read("crm_writeback_plan", rows=300))
    assert len(streamed) > 1
    pd.testing.assert_frame_equal(pd.concat(streamed, ignore_index=True), tables.read("crm_writeback_plan"))


def test_chunks_of_two_plans_are_refused() -> None:
    first, second = big_plan(3), big_plan(4)
    with pytest.raises(ValueError, match="2 plan ids"):
        list(plan_batches([first, second]))


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


def test_a_table_read_for_a_few_columns_equals_those_columns_of_the_whole_table(tmp_path) -> None:
    """The write-back plans read only the columns they use (the CSV storage parses no other)."""
    tables = CsvTables(tmp_path)
    plan = big_plan(30)
    tables.write("crm_writeback_plan", plan)
    columns = ["planned_at", "crm_client_id", "owner_before"]
    pd.testing.assert_frame_equal(tables.read("crm_writeback_plan", columns), tables.read("crm_writeback_plan")[columns])
    with pytest.raises(KeyError, match=r"no column\(s\) \['nope'\]"):
        tables.read("crm_writeback_plan", ["crm_client_id", "nope"])


def test_a_plan_in_chunks_needs_its_refused_rows_as_a_second_pass(tmp_path) -> None:
    from crm_territory.logic.writeback.apply import apply_plan
    from crm_territory.logic.writeback.journal import WritebackJournal

    chunks = iter([big_plan(3)])
    with pytest.raises(ValueError, match="read once"):
        apply_plan(chunks, WritebackJournal(tmp_path), writer=None)  # type: ignore[arg-type]  # refused before any call
    assert not (tmp_path / "writeback").exists()
