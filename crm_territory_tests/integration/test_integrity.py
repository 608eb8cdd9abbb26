"""Integrity rules across tables (crm_territory/logic/integrity.py), and one blocking check through Dagster.

Every unit test asserts the exact violating rows and problem texts, next to rows that must NOT be
flagged, so a rule that always answers "no violations" (or flags everything) fails here.
"""

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import API_BATCH, LandingFile, assemble_raw_clients
from crm_territory.logic.integrity import (
    active_clients_without_one_current_primary,
    client_dim_mismatches,
    client_keys_not_one_cluster,
    orphan_fact_rows,
    records_not_in_one_client,
    unbalanced_batches,
)
from crm_territory.logic.matching.client_dim import client_dim_from_records, client_records
from crm_territory.logic.matching.decisions import MatchDecisions
from crm_territory.logic.matching.resolve import resolve
from crm_territory.logic.placement.pipeline import build_star
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, SEED_SAMPLE, error_text, materialized, utc


def records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """The frame's rows as plain dicts (order kept), for exact comparisons independent of dtypes."""
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame[columns].to_dict("records")]


# ---------------------------------------------------------------- hand-built frames


def fact(rows: list[tuple[str, str, str, bool]]) -> pd.DataFrame:
    """assignments_fact rows: (client_key, territory_id, assignment_type, is_current)."""
    return pd.DataFrame(
        {
            "client_key": [r[0] for r in rows],
            "territory_id": [r[1] for r in rows],
            "primary_advisor_email": [None] * len(rows),
            "assignment_type": [r[2] for r in rows],
            "is_current": pd.Series([r[3] for r in rows], dtype=bool),
        }
    )


def client_dim(rows: list[tuple[str, bool]]) -> pd.DataFrame:
    """client_dim rows: (client_key, is_active)."""
    return pd.DataFrame({"client_key": [r[0] for r in rows], "is_active": pd.Series([r[1] for r in rows], dtype=bool)})


TERRITORIES = pd.DataFrame({"territory_id": ["NOR_INS", "MID_INS", "UNASSIGNED"]})


# ---------------------------------------------------------------- orphan_fact_rows


def test_orphan_fact_rows_names_unknown_client_unknown_territory_and_both():
    clients = client_dim([("csv_drop:1", True), ("csv_drop:2", True), ("csv_drop:3", True)])
    assignments = fact(
        [
            ("csv_drop:1", "NOR_INS", "PRIMARY", True),  # fine
            ("csv_drop:9", "NOR_INS", "PRIMARY", True),  # unknown client
            ("csv_drop:2", "NOPE_XX", "PRIMARY", True),  # unknown territory
            ("csv_drop:3", "UNASSIGNED", "PRIMARY", True),  # fine: UNASSIGNED is a territory
            ("crm_api:1", "ZZZ_ZZZ", "PRIMARY", False),  # both (same id, other source: not the same client)
        ]
    )
    bad = orphan_fact_rows(assignments, clients, TERRITORIES)
    assert list(bad.index) == [1, 2, 4]  # the fact's own rows, so they can be traced back
    assert records(bad, ["client_key", "territory_id", "problem"]) == [
        {"client_key": "csv_drop:9", "territory_id": "NOR_INS", "problem": "client_key not in client_dim"},
        {"client_key": "csv_drop:2", "territory_id": "NOPE_XX", "problem": "territory_id not in territory_dim"},
        {
            "client_key": "crm_api:1",
            "territory_id": "ZZZ_ZZZ",
            "problem": "client_key not in client_dim; territory_id not in territory_dim",
        },
    ]
    # the violating rows keep every fact column (the check's sample shows them)
    assert list(bad.columns) == [*assignments.columns, "problem"]


def test_orphan_fact_rows_flags_nothing_when_every_key_exists_and_everything_when_none_does():
    clients = client_dim([("csv_drop:1", True), ("csv_drop:2", False)])
    assignments = fact([("csv_drop:1", "NOR_INS", "PRIMARY", True), ("csv_drop:2", "MID_INS", "PRIMARY", False)])
    assert orphan_fact_rows(assignments, clients, TERRITORIES).empty

    bad = orphan_fact_rows(assignments, clients.iloc[0:0], TERRITORIES.iloc[0:0])
    assert records(bad, ["client_key", "problem"]) == [
        {"client_key": "csv_drop:1", "problem": "client_key not in client_dim; territory_id not in territory_dim"},
        {"client_key": "csv_drop:2", "problem": "client_key not in client_dim; territory_id not in territory_dim"},
    ]


# ---------------------------------------------------------------- active_clients_without_one_current_primary


def test_active_clients_with_zero_or_two_current_primary_rows_are_flagged_with_their_count():
    clients = client_dim(
        [
            ("csv_drop:1", True),  # exactly one current PRIMARY: fine
            ("csv_drop:2", True),  # none at all
            ("csv_drop:3", True),  # two current PRIMARY rows
            ("csv_drop:4", False),  # inactive with none: fine
            ("csv_drop:5", True),  # only a non-current PRIMARY and a current SECONDARY: counts as none
            ("csv_drop:6", False),  # inactive with its non-current PRIMARY: fine
        ]
    )
    assignments = fact(
        [
            ("csv_drop:1", "NOR_INS", "PRIMARY", True),
            ("csv_drop:1", "MID_INS", "PRIMARY", False),  # an old row beside the current one is fine
            ("csv_drop:3", "NOR_INS", "PRIMARY", True),
            ("csv_drop:3", "MID_INS", "PRIMARY", True),
            ("csv_drop:5", "NOR_INS", "PRIMARY", False),
            ("csv_drop:5", "MID_INS", "SECONDARY", True),
            ("csv_drop:6", "MID_INS", "PRIMARY", False),
        ]
    )
    bad = active_clients_without_one_current_primary(assignments, clients)
    assert records(bad, ["client_key", "current_primary_rows"]) == [
        {"client_key": "csv_drop:2", "current_primary_rows": 0},
        {"client_key": "csv_drop:3", "current_primary_rows": 2},
        {"client_key": "csv_drop:5", "current_primary_rows": 0},
    ]
    assert list(bad.index) == [1, 2, 4]  # client_dim's rows


def test_one_current_primary_holds_for_every_active_client_until_one_loses_it():
    clients = client_dim([("csv_drop:1", True), ("csv_drop:2", True), ("csv_drop:4", False)])
    assignments = fact([("csv_drop:1", "NOR_INS", "PRIMARY", True), ("csv_drop:2", "MID_INS", "PRIMARY", True)])
    assert active_clients_without_one_current_primary(assignments, clients).empty

    # the inactive client is never flagged; an active one whose row stops being current is
    assignments.loc[1, "is_current"] = False
    bad = active_clients_without_one_current_primary(assignments, clients)
    assert records(bad, ["client_key", "current_primary_rows"]) == [{"client_key": "csv_drop:2", "current_primary_rows": 0}]


# ---------------------------------------------------------------- unbalanced_batches


def manifest(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """ingest_manifest rows: (batch, status, rows_read)."""
    return pd.DataFrame(
        {
            "batch": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "rows_read": pd.array([r[2] for r in rows], dtype="Int64"),
        }
    )


def in_batches(files: list[str | None]) -> pd.DataFrame:
    """raw_clients / quarantined_clients rows by source_file (None = the API batch)."""
    return pd.DataFrame({"source_file": pd.Series(files, dtype=object)})


BATCH_COLUMNS = ["batch", "status", "rows_read", "in_raw_clients", "in_quarantine"]


def test_a_batch_that_read_more_rows_than_it_loaded_and_quarantined_is_unbalanced():
    ledger = manifest(
        [
            ("a.csv", "loaded", 3),  # 2 loaded + 1 quarantined: balanced
            ("b.csv", "loaded", 5),  # 2 loaded + 1 quarantined: 2 rows lost
            (API_BATCH, "loaded", 2),  # API rows carry no source_file: counted under the API batch
            ("empty.csv", "rejected", 0),  # rejected, nothing read, nothing loaded: balanced
            ("c.csv", "loaded", 1),  # 2 loaded from 1 read: a row invented
        ]
    )
    raw = in_batches(["a.csv", "a.csv", "b.csv", "b.csv", None, None, "c.csv", "c.csv"])
    quarantined = in_batches(["a.csv", "b.csv"])
    bad = unbalanced_batches(ledger, raw, quarantined)
    assert records(bad, BATCH_COLUMNS) == [
        {"batch": "b.csv", "status": "loaded", "rows_read": 5, "in_raw_clients": 2, "in_quarantine": 1},
        {"batch": "c.csv", "status": "loaded", "rows_read": 1, "in_raw_clients": 2, "in_quarantine": 0},
    ]


def test_rows_claiming_a_batch_absent_from_the_manifest_are_reported_as_not_in_manifest():
    ledger = manifest([("a.csv", "loaded", 2), (API_BATCH, "loaded", 1)])
    raw = in_batches(["a.csv", "ghost.csv", None, "ghost.csv"])
    quarantined = in_batches(["a.csv", "phantom.csv"])
    # a.csv: 1 + 1 = 2 read, the API: 1 = 1 read; only the unlisted batches are lost
    bad = unbalanced_batches(ledger, raw, quarantined)
    assert records(bad, BATCH_COLUMNS) == [
        {"batch": "ghost.csv", "status": "not in manifest", "rows_read": 0, "in_raw_clients": 2, "in_quarantine": 0},
        {"batch": "phantom.csv", "status": "not in manifest", "rows_read": 0, "in_raw_clients": 0, "in_quarantine": 1},
    ]


def test_balanced_batches_give_no_violation_until_the_api_batch_goes_missing():
    ledger = manifest([("a.csv", "loaded", 2), (API_BATCH, "loaded", 1)])
    raw, quarantined = in_batches(["a.csv", None]), in_batches(["a.csv"])
    assert unbalanced_batches(ledger, raw, quarantined).empty

    bad = unbalanced_batches(ledger[ledger["batch"] != API_BATCH], raw, quarantined)
    assert records(bad, BATCH_COLUMNS) == [
        {"batch": API_BATCH, "status": "not in manifest", "rows_read": 0, "in_raw_clients": 1, "in_quarantine": 0}
    ]


# ---------------------------------------------------------------- client_xref and client_dim conservation


def raw_rows(keys: list[tuple[str, str]]) -> pd.DataFrame:
    """raw_clients rows: (source_system, client_id)."""
    return pd.DataFrame({"source_system": [k[0] for k in keys], "client_id": [k[1] for k in keys]})


def xref_rows(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """client_xref rows: (source_system, source_record_id, client_key)."""
    return pd.DataFrame(
        {"source_system": [r[0] for r in rows], "source_record_id": [r[1] for r in rows], "client_key": [r[2] for r in rows]}
    )


def dim_rows(rows: list[tuple[str, int]]) -> pd.DataFrame:
    """client_dim rows: (client_key, source_record_count)."""
    return pd.DataFrame({"client_key": [r[0] for r in rows], "source_record_count": [r[1] for r in rows]})


def test_records_not_in_one_client_name_missing_duplicated_and_unexplained_records():
    raw = raw_rows([("csv_drop", "1"), ("csv_drop", "1"), ("csv_drop", "2"), ("crm_api", "1"), ("crm_api", "7")])
    xref = xref_rows(
        [
            ("csv_drop", "1", "csv_drop:1"),
            ("crm_api", "1", "csv_drop:1"),
            ("crm_api", "7", "crm_api:7"),
            ("crm_api", "7", "crm_api:7"),
            ("crm_api", "9", "crm_api:9"),
        ]
    )
    bad = records_not_in_one_client(raw, xref)
    assert records(bad, ["record", "problem"]) == [
        {"record": "csv_drop:2", "problem": "in raw_clients, in no client of client_xref"},
        {"record": "crm_api:7", "problem": "in more than one row of client_xref"},
        {"record": "crm_api:9", "problem": "in client_xref, not in raw_clients"},
    ]
    clean = xref_rows(
        [
            ("csv_drop", "1", "csv_drop:1"),
            ("csv_drop", "2", "csv_drop:1"),
            ("crm_api", "1", "crm_api:1"),
            ("crm_api", "7", "crm_api:7"),
        ]
    )
    assert records_not_in_one_client(raw, clean).empty


def matches_rows(pairs: list[tuple[str, str, bool]]) -> pd.DataFrame:
    return pd.DataFrame({"record_a": [p[0] for p in pairs], "record_b": [p[1] for p in pairs], "merged": [p[2] for p in pairs]})


NO_RETIREMENTS = pd.DataFrame({"retired_client_key": pd.Series(dtype=object)})


def test_client_keys_not_one_cluster_rebuilds_clusters_from_the_merged_pairs():
    xref = xref_rows([("crm_api", "1", "K1"), ("crm_api", "2", "K1"), ("crm_api", "3", "K3"), ("csv_drop", "4", "K4")])
    # 1-2 merged under K1, 3 and 4 alone: consistent; a pair scored but not merged changes nothing
    matches = matches_rows([("crm_api:1", "crm_api:2", True), ("crm_api:3", "csv_drop:4", False)])
    assert client_keys_not_one_cluster(xref, matches, NO_RETIREMENTS).empty

    # records 1 and 2 merged but under two keys; K1 also on record 3, which nothing links to them
    split = xref_rows([("crm_api", "1", "K1"), ("crm_api", "2", "K2"), ("crm_api", "3", "K1"), ("csv_drop", "4", "K4")])
    bad = client_keys_not_one_cluster(split, matches, pd.DataFrame({"retired_client_key": ["K4"]}))
    assert sorted(map(tuple, bad[["client_key", "problem"]].to_numpy().tolist())) == [
        ("K1", "one client_key on several clusters"),
        ("K1", "one cluster under several client_keys"),
        ("K2", "one cluster under several client_keys"),
        ("K4", "retired client_key still in use"),
    ]


def test_client_dim_mismatches_name_missing_unexplained_duplicated_and_miscounted_clients():
    xref = xref_rows(
        [
            ("csv_drop", "1", "csv_drop:1"),
            ("crm_api", "1", "csv_drop:1"),
            ("csv_drop", "2", "csv_drop:2"),
            ("csv_drop", "3", "csv_drop:3"),
        ]
    )
    assert client_dim_mismatches(xref, dim_rows([("csv_drop:1", 2), ("csv_drop:2", 1), ("csv_drop:3", 1)])).empty
    bad = client_dim_mismatches(xref, dim_rows([("csv_drop:1", 1), ("csv_drop:3", 1), ("crm_api:9", 1), ("csv_drop:3", 1)]))
    assert records(bad, ["client_key", "problem"]) == [
        {"client_key": "csv_drop:2", "problem": "in client_xref, missing from client_dim"},
        {"client_key": "crm_api:9", "problem": "in client_dim, not in client_xref"},
        {"client_key": "csv_drop:3", "problem": "more than one row in client_dim"},
        {"client_key": "csv_drop:1", "problem": "source_record_count differs from the records client_xref lists"},
    ]


# ---------------------------------------------------------------- the real logic on a tiny drop, then tampered


@pytest.fixture
def sample_tables(reference, seed_rules):
    """The seed sample (plus an inactive client and a quarantined row) through the real logic functions."""
    drop = SEED_SAMPLE.replace("advisor_email\n", "advisor_email,status\n").replace("example.com\n", "example.com,active\n")
    drop += "4,Delta Trust,Midwest,Retail,,,inactive\n,Nameless Row,Midwest,Retail,,,active\n"
    ingest = assemble_raw_clients(
        [(LandingFile("clients.csv", len(drop), utc("2026-01-01")), read_drop("clients.csv", drop.encode()))],
        None,
        utc("2026-01-02"),
    )
    records = client_records(ingest.raw_clients, reference)
    resolution = resolve(records, MatchDecisions.none(), None, None, utc("2026-01-02"))
    clients = client_dim_from_records(records, resolution.xref)
    star = build_star(clients, seed_rules, reference, issued_at=utc("2026-01-02"))
    return {
        "client_xref": resolution.xref,
        "raw_clients": ingest.raw_clients,
        "quarantined_clients": ingest.quarantined,
        "ingest_manifest": ingest.manifest,
        "client_dim": clients,
        "territory_dim": star.territory_dim,
        "assignments_fact": star.assignments.fact,
    }


def test_the_real_pipeline_output_holds_every_rule_and_each_tampering_is_caught(sample_tables):
    t = sample_tables
    assert len(t["raw_clients"]) == 4 and len(t["quarantined_clients"]) == 1
    assert not t["client_dim"].set_index("client_key").loc["csv_drop:4", "is_active"]
    assert orphan_fact_rows(t["assignments_fact"], t["client_dim"], t["territory_dim"]).empty
    assert active_clients_without_one_current_primary(t["assignments_fact"], t["client_dim"]).empty
    assert unbalanced_batches(t["ingest_manifest"], t["raw_clients"], t["quarantined_clients"]).empty
    assert records_not_in_one_client(t["raw_clients"], t["client_xref"]).empty
    assert client_dim_mismatches(t["client_xref"], t["client_dim"]).empty

    fact_rows = t["assignments_fact"].copy()
    fact_rows.loc[fact_rows["client_key"] == "csv_drop:2", "territory_id"] = "NOPE_XX"
    bad = orphan_fact_rows(fact_rows, t["client_dim"], t["territory_dim"])
    assert records(bad, ["client_key", "territory_id", "problem"]) == [
        {"client_key": "csv_drop:2", "territory_id": "NOPE_XX", "problem": "territory_id not in territory_dim"}
    ]

    # the inactive client csv_drop:4 has no current row and is fine; an active one losing its row is not
    fact_rows = t["assignments_fact"][t["assignments_fact"]["client_key"] != "csv_drop:3"]
    bad = active_clients_without_one_current_primary(fact_rows, t["client_dim"])
    assert records(bad, ["client_key", "current_primary_rows"]) == [{"client_key": "csv_drop:3", "current_primary_rows": 0}]

    # a raw row lost between the drop and raw_clients
    bad = unbalanced_batches(t["ingest_manifest"], t["raw_clients"].iloc[1:], t["quarantined_clients"])
    assert records(bad, BATCH_COLUMNS) == [
        {"batch": "clients.csv", "status": "loaded", "rows_read": 5, "in_raw_clients": 3, "in_quarantine": 1}
    ]

    # client_dim duplicating one client
    doubled = pd.concat([t["client_dim"], t["client_dim"].iloc[[0]]], ignore_index=True)
    bad = client_dim_mismatches(t["client_xref"], doubled)
    assert records(bad, ["client_key", "problem"]) == [{"client_key": "csv_drop:1", "problem": "more than one row in client_dim"}]


# ---------------------------------------------------------------- through Dagster: a blocking check blocks


@pytest.mark.integration
def test_a_failing_blocking_integrity_check_fails_its_step_and_stops_what_is_downstream(monkeypatch, data_dir):
    """Stored tables are tampered after a real drop run; only the checks run (the assets load from storage)."""
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    monkeypatch.delenv("CRM_API_URL", raising=False)
    settings = Settings.from_env()
    first = (
        build_definitions(settings)
        .resolve_job_def("drop_ingest_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    )
    assert first.success

    defs = build_definitions(settings)
    everything = [*defs.assets, *defs.asset_checks]

    def run(selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            everything,
            selection=selection,
            resources=defs.resources,
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config=QUIET,
        )

    keys_exist = dg.AssetCheckKey(dg.AssetKey("assignments_fact"), "assignments_fact_keys_exist")
    # control: on the untouched tables the check, run alone, passes
    control = run(dg.AssetSelection.checks(keys_exist))
    assert control.success
    assert [(e.check_name, e.passed) for e in control.get_asset_check_evaluations()] == [("assignments_fact_keys_exist", True)]

    store = CsvTables(data_dir)
    tampered = store.read("assignments_fact")
    tampered.loc[tampered["client_key"] == "csv_drop:2", "territory_id"] = "NOPE_XX"
    store.write("assignments_fact", tampered)

    result = run(dg.AssetSelection.checks(keys_exist))
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "assignments_fact_keys_exist"
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["fact_rows_without_their_keys"].value == 1
    sample = evaluation.metadata["sample"].value
    assert "NOPE_XX" in sample and "csv_drop:2" in sample and "territory_id not in territory_dim" in sample
    assert "Re-materialize" in evaluation.metadata["next_step"].value
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "assignments_fact_assignments_fact_keys_exist"
    assert "blocking asset check failed with ERROR severity" in error_text(failure)
    assert "assignments_fact_keys_exist" in error_text(failure)
    assert materialized(result) == set()

    # blocking means what is downstream does not run: a client_dim that invents a client stops
    # territory_dim and assignments_fact in the same run, and the stored tables stay as they were
    clients = store.read("client_dim")
    invented = clients.iloc[[0]].assign(client_key="csv_drop:999", source_record_id="999")
    store.write("client_dim", pd.concat([clients, invented], ignore_index=True))
    territories_before = store.read("territory_dim")
    conserves = dg.AssetCheckKey(dg.AssetKey("client_dim"), "client_dim_conserves_clients")
    capacity_check = dg.AssetCheckKey(
        dg.AssetKey("assignments_fact"), "assignments_fact_advisor_capacity"
    )  # runs inside the asset's step
    result = run(
        dg.AssetSelection.checks(conserves, capacity_check)
        | dg.AssetSelection.assets("territory_dim", "assignments_fact").without_checks()
    )
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()  # the capacity check never ran: its asset was blocked
    assert evaluation.check_name == "client_dim_conserves_clients"
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "csv_drop:999" in evaluation.metadata["sample"].value
    assert "in client_dim, not in client_xref" in evaluation.metadata["sample"].value
    assert materialized(result) == set()
    # the blocked steps were planned but never started
    assert {e.step_key for e in result.all_events if e.is_step_start} == {"client_dim_client_dim_conserves_clients"}
    pd.testing.assert_frame_equal(store.read("territory_dim"), territories_before)
    pd.testing.assert_frame_equal(store.read("assignments_fact"), tampered)


@pytest.mark.integration
def test_a_run_on_a_data_folder_another_run_holds_waits_then_fails_naming_it_and_writes_nothing(monkeypatch, data_dir):
    """The probe: two `cli run`s on one folder neither waited nor refused, and one pull was silently thrown away."""
    from crm_territory.storage.writer_lock import DataFolderLock

    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    monkeypatch.delenv("CRM_API_URL", raising=False)
    monkeypatch.setenv("CRM_LOCK_WAIT_SECONDS", "0.5")
    job = build_definitions(Settings.from_env()).resolve_job_def("drop_ingest_job")
    quick = QUIET
    other = DataFolderLock(data_dir)
    other.acquire("0123abcd-the-other-run")
    try:
        blocked = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=quick)
    finally:
        other.release()
    assert not blocked.success
    errors = [e.event_specific_data.error for e in blocked.all_events if e.is_resource_init_failure]
    assert errors and "in use by run 0123abcd" in errors[0].to_string()
    assert not (data_dir / "raw").exists() and not (data_dir / "core").exists()  # nothing was written
    # once the other run is done, the same run goes through
    assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=quick).success
