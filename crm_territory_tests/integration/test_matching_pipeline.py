"""Entity resolution through Dagster: drops with duplicates, human decisions across runs, stable keys, a broken decisions file."""

import os

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.logic.matching.client_dim import build_client_dim
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, error_text

pytestmark = pytest.mark.integration

# A later export of the same CRM book: an Atlas duplicate, a Crescent that differs only by region (a
# possible match for review), and two identical names in a script the matcher does not compare.
EXPORT = (
    "client_id,client_name,region,segment,parent_org,advisor_email\n"
    '10,"ATLAS CAPITAL PTNRS., L.L.C.",NE,INST,Atlas Holdings,ADVISOR1@EXAMPLE.COM\n'
    "12,Crescent Advisory Group,West,Institutional,,advisor3@example.com\n"
    "13,北京资本,Northeast,Retail,,advisor2@example.com\n"
    "14,北京资本,Northeast,Retail,,advisor2@example.com\n"
)
SEED_MTIME, EXPORT_MTIME = 1_788_000_000, 1_788_100_000  # the seed sample is the older drop


@pytest.fixture
def settings(monkeypatch, data_dir) -> Settings:
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    monkeypatch.delenv("CRM_API_URL", raising=False)
    (data_dir / "landing" / "crm_export.csv").write_text(EXPORT, encoding="utf-8")
    os.utime(data_dir / "landing" / "clients.csv", (SEED_MTIME, SEED_MTIME))
    os.utime(data_dir / "landing" / "crm_export.csv", (EXPORT_MTIME, EXPORT_MTIME))
    return Settings.from_env()


def run(settings: Settings) -> dg.ExecuteInProcessResult:
    return (
        build_definitions(settings)
        .resolve_job_def("drop_ingest_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    )


def decide(settings: Settings, *rows: str) -> None:
    (settings.data_dir / "matching" / "decisions.csv").write_text(
        "record_a,record_b,decision,note\n" + "".join(r + "\n" for r in rows), encoding="utf-8"
    )


def tables(settings: Settings) -> dict[str, pd.DataFrame]:
    store = CsvTables(settings.data_dir)
    names = ["client_xref", "client_matches", "client_key_retirements", "client_dim", "assignments_fact", "client_dim_history"]
    return {name: store.read(name) for name in names}


def key_of(xref: pd.DataFrame) -> dict[str, str]:
    return dict(zip(xref["source_system"] + ":" + xref["source_record_id"], xref["client_key"]))


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.check_name for e in result.get_asset_check_evaluations() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def test_duplicates_merge_decisions_split_and_merge_and_keys_stay_stable(settings):
    first = run(settings)
    assert first.success and failed_checks(first) == []
    t = tables(settings)
    keys = key_of(t["client_xref"])
    # the export's Atlas is the seed's Atlas: one client, under the older record's key
    assert keys["csv_drop:10"] == keys["csv_drop:1"] == "csv_drop:1"
    # same name in another region: listed for review, not merged
    assert keys["csv_drop:12"] == "csv_drop:12" and keys["csv_drop:3"] == "csv_drop:3"
    pairs = t["client_matches"].set_index(["record_a", "record_b"])
    assert (pairs.loc[("csv_drop:1", "csv_drop:10"), "decision"], pairs.loc[("csv_drop:1", "csv_drop:10"), "merged"]) == (
        "match",
        True,
    )
    assert (pairs.loc[("csv_drop:12", "csv_drop:3"), "decision"], pairs.loc[("csv_drop:12", "csv_drop:3"), "merged"]) == (
        "possible",
        False,
    )
    # identical names the matcher cannot compare stay apart, with the reason
    assert keys["csv_drop:13"] != keys["csv_drop:14"]
    xref = t["client_xref"].set_index("source_record_id")
    assert xref.loc["13", "unmatchable_reason"].startswith("name in a script")
    # one golden row: the newer record's spelling (same source, so the most recent wins), one PRIMARY assignment
    atlas = t["client_dim"].set_index("client_key").loc["csv_drop:1"]
    assert (atlas["client_name"], atlas["region"], atlas["source_record_count"]) == (
        "ATLAS CAPITAL PTNRS., L.L.C.",
        "Northeast",
        2,
    )
    assert t["client_dim"]["client_key"].tolist().count("csv_drop:10") == 0
    primary = t["assignments_fact"][t["assignments_fact"]["assignment_type"] == "PRIMARY"]
    assert primary["client_key"].is_unique and set(primary["client_key"]) == set(t["client_dim"]["client_key"])
    assert len(t["client_xref"]) == 7 and len(t["client_dim"]) == 6  # seven records, the two Atlas records one client

    # an analyst splits the Atlas pair and confirms the Crescent pair
    decide(
        settings,
        "csv_drop:10,csv_drop:1,cannot_link,two firms: checked with the desk",
        "csv_drop:3,csv_drop:12,must_link,same firm moved west",
    )
    second = run(settings)
    assert second.success and failed_checks(second) == []
    t2 = tables(settings)
    keys2 = key_of(t2["client_xref"])
    # the split: the Atlas key stays with the older record, the newer one is a client of its own
    assert keys2["csv_drop:1"] == "csv_drop:1" and keys2["csv_drop:10"] == "csv_drop:10"
    # the merge: the key of the older records survives; the other is retired, pointing to it
    assert keys2["csv_drop:3"] == keys2["csv_drop:12"] == "csv_drop:3"
    retired = t2["client_key_retirements"]
    assert retired[["retired_client_key", "client_key"]].values.tolist() == [["csv_drop:12", "csv_drop:3"]]
    # keys of untouched clients, and when they were issued, do not move
    unchanged = ["csv_drop:2", "csv_drop:13", "csv_drop:14"]
    before = t["client_xref"].assign(record=lambda d: d["source_system"] + ":" + d["source_record_id"]).set_index("record")
    after = t2["client_xref"].assign(record=lambda d: d["source_system"] + ":" + d["source_record_id"]).set_index("record")
    pd.testing.assert_frame_equal(after.loc[unchanged], before.loc[unchanged])
    linked = after["linked_by"]
    assert (linked["csv_drop:3"], linked["csv_drop:12"], linked["csv_drop:1"]) == (
        "human decision",
        "human decision",
        "only record",
    )
    pairs = t2["client_matches"].set_index(["record_a", "record_b"])
    assert pairs.loc[("csv_drop:1", "csv_drop:10"), ["decision", "decided_by", "merged"]].tolist() == [
        "cannot_link",
        "human",
        False,
    ]
    assert pairs.loc[("csv_drop:12", "csv_drop:3"), ["decision", "decided_by", "merged"]].tolist() == ["must_link", "human", True]
    # client_dim: the retired key is gone without counting as a lost client; history closes its version
    assert "csv_drop:12" not in set(t2["client_dim"]["client_key"])
    keeps = next(e for e in second.get_asset_check_evaluations() if e.check_name == "client_dim_keeps_previous_clients")
    assert keeps.passed and keeps.metadata["keys_retired_by_merges"].value == 1
    history = t2["client_dim_history"].set_index("client_key")
    assert not history.loc["csv_drop:12", "is_current"] and pd.notna(history.loc["csv_drop:12", "valid_to"])

    # a third run on the same input changes nothing, retirements included
    third = run(settings)
    assert third.success
    t3 = tables(settings)
    for name in ["client_xref", "client_matches", "client_key_retirements", "client_dim", "assignments_fact"]:
        pd.testing.assert_frame_equal(t3[name], t2[name], obj=name)


def test_a_broken_decisions_file_stops_the_run_naming_the_line_and_publishes_nothing(settings):
    assert run(settings).success
    store = CsvTables(settings.data_dir)
    before = {name: store.read(name) for name in ["client_xref", "client_dim"]}
    decide(settings, "csv_drop:1,csv_drop:10,must_link,ok", "csv_drop:2,csv_drop:3,maybe,not a decision")
    result = run(settings)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "client_xref"
    message = error_text(failure)
    assert "decisions.csv" in message and "line 3" in message and "'maybe'" in message and "Nothing was published" in message
    for name, frame in before.items():
        pd.testing.assert_frame_equal(store.read(name), frame, obj=name)


def test_upgrading_from_a_client_dim_built_before_entity_resolution(settings, reference):
    """A data folder written by the previous version: client_dim without source_record_count, one client per
    record (the export's Atlas a client of its own), no client_xref. The first run keeps every key, merges
    the duplicate under the key of the older record and records the retired one."""
    assert run(settings).success
    store = CsvTables(settings.data_dir)
    raw = store.read("raw_clients")
    old = build_client_dim(raw, reference)  # one client per record, as before entity resolution
    assert {"csv_drop:1", "csv_drop:10"} <= set(old["client_key"])
    store.path_for("client_dim").write_text(old.drop(columns=["source_record_count"]).to_csv(index=False), encoding="utf-8")
    for table in ["client_xref", "client_matches", "client_key_retirements"]:
        store.path_for(table).unlink()
    assert (store.read("client_dim")["source_record_count"] == 1).all()  # the old layout still reads

    result = run(settings)
    assert result.success and failed_checks(result) == []
    keys = key_of(store.read("client_xref"))
    assert keys["csv_drop:10"] == keys["csv_drop:1"] == "csv_drop:1"  # the seed sample's drop is older
    assert store.read("client_key_retirements")[["retired_client_key", "client_key"]].values.tolist() == [
        ["csv_drop:10", "csv_drop:1"]
    ]
    keeps = next(e for e in result.get_asset_check_evaluations() if e.check_name == "client_dim_keeps_previous_clients")
    assert keeps.passed and keeps.metadata["keys_retired_by_merges"].value == 1
