"""The whole pipeline through Dagster, against a temporary data folder and the real mock API over HTTP."""

import json

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.logic.matching.quality import pair_quality
from crm_territory.schemas import TABLES
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, error_text, materialized
from crm_territory_tests.support.mock_api_server import run_mock_api
from mock_api.generator import client_entities, generate_clients

pytestmark = pytest.mark.integration

API_CLIENTS = 1000
MOCK_API_BOOK = {"clients": API_CLIENTS, "seed": 42}


@pytest.fixture
def env(pipeline_env):
    return pipeline_env


def run_job(settings: Settings, job: str = "materialize_all_job", run_config=QUIET, **kwargs) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=run_config, **kwargs
    )


def checks_by_name(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materialize_every_asset_and_check(env):
    defs = build_definitions(env)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, instance=dg.DagsterInstance.ephemeral(), run_config=QUIET
    )
    assert result.success

    evaluations = result.get_asset_check_evaluations()
    expected_checks = {key.name for key in defs.get_repository_def().asset_graph.asset_check_keys}
    # + the checks assets run on their own data: client_dim's loss, the rules' analysis, advisor capacity, history
    # intervals, entity resolution's conservation and key integrity
    own = {"client_dim_keeps_previous_clients", "territory_rules_static_analysis", "assignments_fact_advisor_capacity",
           "client_dim_history_intervals_valid", "assignments_fact_history_intervals_valid",
           "client_xref_covers_every_record", "client_keys_name_one_cluster_each", "quarantined_clients_none_new"}  # fmt: skip
    standalone = {key.name for c in defs.asset_checks for key in c.check_keys}
    assert {f"{table}_matches_schema" for table in TABLES} <= standalone
    assert expected_checks == standalone | own and not standalone & own
    assert {e.check_name for e in evaluations} == expected_checks
    errors = [e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert errors == []

    store = CsvTables(env.data_dir)
    raw, quarantined, manifest = store.read("raw_clients"), store.read("quarantined_clients"), store.read("ingest_manifest")
    clients, territories, fact = store.read("client_dim"), store.read("territory_dim"), store.read("assignments_fact")

    # rows in = rows loaded + rows quarantined, counted from what the sources hold
    assert manifest["rows_read"].sum() == API_CLIENTS + 3 == len(raw) + len(quarantined)
    # the mock CRM sends a few nameless records: exactly those are quarantined, for that reason
    book = generate_clients(API_CLIENTS, seed=42)
    nameless = set(book.loc[book["client_name"].fillna("").str.strip() == "", "client_id"])
    assert nameless, "the mock book should contain nameless records"
    api_quarantine = quarantined[quarantined["source_system"] == "crm_api"]
    assert set(api_quarantine["source_record_id"]) == nameless
    assert set(api_quarantine["reason"]) == {"missing client_name"}
    # one version per record here; the planted duplicates merge: one client per real organisation (the generator's truth)
    xref = store.read("client_xref")
    assert len(xref) == len(raw)
    truth = pd.Series(client_entities(API_CLIENTS, seed=42).to_numpy(), index=("crm_api:" + book["client_id"]).to_numpy())
    api = xref[xref["source_system"] == "crm_api"]
    found = pair_quality(pd.Series(api["client_key"].to_numpy(), index=("crm_api:" + api["source_record_id"]).to_numpy()), truth)
    assert found.true_pairs > 10, "the mock book should contain duplicates"
    assert found.precision >= 0.95 and found.recall >= 0.9, found
    assert clients["source_record_count"].sum() == len(xref) and len(clients) == xref["client_key"].nunique() < len(xref)
    # the seed sample kept its territories next to the API's clients
    seed = fact.merge(clients, on="client_key").set_index("client_key")
    assert seed.loc["csv_drop:1", "territory_id"] == "NOR_INS"
    assert seed.loc["csv_drop:2", "territory_id"] == "NOR_RET"
    assert seed.loc["csv_drop:3", "territory_id"] == "MID_INS"
    # every active client: exactly one current PRIMARY, in a territory that exists
    current = fact[fact["is_current"] & (fact["assignment_type"] == "PRIMARY")]
    assert sorted(current["client_key"]) == sorted(clients.loc[clients["is_active"], "client_key"])
    assert set(fact["territory_id"]) <= set(territories["territory_id"])
    assert not clients["is_active"].all()  # inactive clients come from the CRM's status, not a constant

    # metadata: row counts and previews on every asset, client counts on territory_dim
    mats = {e.materialization.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()}
    for name in [
        "crm_api_clients",
        "raw_clients",
        "quarantined_clients",
        "ingest_manifest",
        "client_xref",
        "client_matches",
        "client_dim",
        "territory_dim",
        "assignments_fact",
    ]:
        assert "dagster/row_count" in mats[name].metadata and "preview" in mats[name].metadata, name
    assert mats["client_dim"].metadata["dagster/row_count"].value == len(clients)
    # computed once per run: client_dim starts from the records client_xref resolved (wiring/run_memo.py)
    assert mats["client_dim"].metadata["client_records"].value == "handed over by this run's client_xref step"
    assert "current_clients" in mats["territory_dim"].metadata["clients_per_territory"].value


def test_rerunning_gives_the_same_star_schema(env):
    assert run_job(env).success
    store = CsvTables(env.data_dir)
    # client_xref too, timestamps included: a re-run issues no key and sees no record for the first time
    first = {
        t: store.read(t)
        for t in [
            "client_xref",
            "client_matches",
            "client_key_retirements",
            "client_dim",
            "territory_dim",
            "assignments_fact",
            "quarantined_clients",
        ]
    }
    assert run_job(env).success
    for table, before in first.items():
        after = store.read(table)
        if table == "quarantined_clients":
            before, after = before.drop(columns="ingested_at"), after.drop(columns="ingested_at")
        pd.testing.assert_frame_equal(after, before, obj=table)


def test_client_dim_alone_reads_raw_clients_itself_and_builds_the_same_table(env):
    """Without this run's client_xref step to hand its records over, client_dim reads raw_clients through the
    IO manager (it is a dependency, not an input) and builds the same golden rows."""
    assert run_job(env).success
    before = CsvTables(env.data_dir).read("client_dim")
    job = dg.define_asset_job("client_dim_alone", selection=["client_dim"])
    defs = build_definitions(env)
    alone = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("client_dim_alone")
    result = alone.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    assert result.success
    steps = {e.step_key for e in result.all_events if e.is_step_start}
    assert "client_dim" in steps and "client_xref" not in steps and "raw_clients" not in steps  # client_dim and its checks
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["client_records"].value == "computed from raw_clients in this step"
    pd.testing.assert_frame_equal(CsvTables(env.data_dir).read("client_dim"), before)


def test_bad_drops_are_rejected_or_quarantined_and_the_rest_loads(env):
    landing = env.data_dir / "landing"
    header = "client_id,client_name,region,segment,parent_org,advisor_email\n"
    (landing / "export.xlsx.csv").write_bytes(b"PK\x03\x04\x00\x14\x00binary")
    (landing / "latin1.csv").write_bytes((header + "20,Caf\xe9 Capital,West,Retail,,\n").encode("latin-1"))
    (landing / "empty.csv").write_bytes(b"")
    (landing / "accounts.csv").write_text("account,sector,year_established\nAcme Corporation,technolgy,1996\n")
    (landing / "mixed.csv").write_text(
        header
        + "30,Good Co,West,Retail,,a@b.com\n,No Id Co,West,Retail,,\n31,,West,Retail,,\n32,Short\n33,Atlantis Co,Atlantis,Retail,,\n"
    )

    result = run_job(env)
    assert result.success
    store = CsvTables(env.data_dir)
    manifest = store.read("ingest_manifest").set_index("batch")
    assert manifest.loc["export.xlsx.csv", "status"] == "rejected"
    assert "binary" in manifest.loc["export.xlsx.csv", "message"]
    assert "not UTF-8" in manifest.loc["latin1.csv", "message"]
    assert "empty" in manifest.loc["empty.csv", "message"]
    assert "wrong columns" in manifest.loc["accounts.csv", "message"]
    assert manifest.loc["clients.csv", "status"] == manifest.loc["mixed.csv", "status"] == "loaded"

    quarantined = store.read("quarantined_clients")
    mixed = quarantined[quarantined["source_file"] == "mixed.csv"].set_index("source_row")
    assert mixed["reason"].to_dict() == {
        2: "missing client_id",
        3: "missing client_name",
        4: "malformed row: 2 fields, expected 6",
    }
    assert json.loads(mixed.loc[2, "original_values"])["client_name"] == "No Id Co"

    clients = store.read("client_dim").set_index("client_key")
    assert {"csv_drop:1", "csv_drop:30", "csv_drop:33"} <= set(clients.index)
    fact = store.read("assignments_fact").set_index("client_key")
    assert fact.loc["csv_drop:33", "territory_id"] == "UNASSIGNED"

    checks = checks_by_name(result)
    rejected = checks["landing_files_accepted"]
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.WARN
    assert rejected.metadata["files_rejected"].value == 4
    unknown = checks["client_dim_unknown_region_or_segment"]
    assert not unknown.passed and unknown.severity == dg.AssetCheckSeverity.WARN
    assert "Atlantis" in unknown.metadata["sample"].value
    # and which client: Atlantis Co, by key and name, with the spelling at fault
    atlantis = [line for line in unknown.metadata["affected_clients"].value.splitlines() if "csv_drop:33 " in line]
    assert len(atlantis) == 1 and "Atlantis Co" in atlantis[0] and "unknown region 'Atlantis'" in atlantis[0], atlantis
    assert checks["raw_rows_conserved"].passed


def test_a_link_and_a_name_that_is_not_utf8_are_rejected_alone_and_nothing_of_them_is_read(env):
    """The probe: a link to /etc/passwd put its lines into ingest_manifest.message and the log; a latin-1 file name
    failed the whole ingest with a UnicodeEncodeError that named no file, every run."""
    import os

    landing = env.data_dir / "landing"
    (landing / "passwd.csv").symlink_to("/etc/passwd")
    with open(os.path.join(os.fsencode(landing), b"caf\xe9.csv"), "wb") as handle:
        handle.write(b"client_id,client_name,region,segment,parent_org,advisor_email\n50,Cafe Co,West,Retail,,\n")

    result = run_job(env)
    assert result.success
    store = CsvTables(env.data_dir)
    manifest = store.read("ingest_manifest").set_index("batch")
    assert manifest.loc["passwd.csv", "status"] == "rejected" and "symbolic link" in manifest.loc["passwd.csv", "message"]
    assert manifest.loc["caf\\xe9.csv", "status"] == "rejected" and "not UTF-8" in manifest.loc["caf\\xe9.csv", "message"]
    assert manifest.loc["clients.csv", "status"] == "loaded"  # the rest of the landing zone loads
    written = "".join(path.read_text() for path in env.data_dir.rglob("*.csv") if "landing" not in path.parts)
    assert "root:x:" not in written
    assert checks_by_name(result)["raw_rows_conserved"].passed
    assert not checks_by_name(result)["landing_files_accepted"].passed


def test_a_run_that_quarantines_new_rows_warns_by_source_and_reason_and_a_rerun_does_not(env):
    assert run_job(env).success  # the book as it is (the mock CRM sends a few bad rows of its own)
    header = "client_id,client_name,region,segment,parent_org,advisor_email\n"
    (env.data_dir / "landing" / "late.csv").write_text(
        header + "40,Late Co,West,Retail,,a@b.com\n,No Id Co,West,Retail,,\n41,,West,Retail,,\n"
    )

    result = run_job(env)
    assert result.success
    check = checks_by_name(result)["quarantined_clients_none_new"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["rows_quarantined_this_run"].value == 2
    by_reason = check.metadata["new_by_source_and_reason"].value
    assert "late.csv" in by_reason and "missing client_id" in by_reason and "missing client_name" in by_reason
    assert check.metadata["rows_in_quarantine"].value > 2  # the earlier rows are still in quarantine, not new

    again = checks_by_name(run_job(env))["quarantined_clients_none_new"]
    assert again.passed and again.metadata["rows_quarantined_this_run"].value == 0


def test_a_failing_blocking_check_stops_the_downstream_assets(env):
    assert run_job(env).success
    store = CsvTables(env.data_dir)
    # a hand-edited registry with an id that breaks the naming rule: territory_dim keeps issued ids, its schema check must block
    territories = store.read("territory_dim")
    territories.loc[territories["territory_id"] == "MID_INS", "territory_id"] = "mid-ins"
    store.write("territory_dim", territories)
    fact_before = store.read("assignments_fact")

    result = run_job(env)
    assert not result.success
    check = checks_by_name(result)["territory_dim_matches_schema"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["failing_values"].value == 1
    assert "mid-ins" in check.metadata["failure_cases_sample"].value
    assert "territory_id" in check.metadata["failing_values_by_rule"].value
    done = materialized(result)
    assert "territory_dim" in done and "assignments_fact" not in done
    pd.testing.assert_frame_equal(store.read("assignments_fact"), fact_before)


def test_an_inconsistent_territory_registry_stops_with_what_to_fix(env):
    assert run_job(env).success
    store = CsvTables(env.data_dir)
    territories = store.read("territory_dim")
    store.write("territory_dim", pd.concat([territories, territories.iloc[[0]]], ignore_index=True))
    result = run_job(env)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "territory_dim"
    assert "territory_id MID_INS appear(s) more than once" in error_text(failure)
    assert "assignments_fact" not in materialized(result)


def test_an_api_page_that_keeps_failing_fails_the_run_and_loads_nothing(env, monkeypatch, data_dir):
    assert run_job(env).success
    store = CsvTables(env.data_dir)
    snapshot_before = store.read("crm_api_clients")
    with run_mock_api(clients=API_CLIENTS, fail_pages="1") as broken_url:
        monkeypatch.setenv("CRM_API_URL", broken_url)
        settings = Settings.from_env()
        defs = build_definitions(settings)
        result = defs.resolve_job_def("crm_api_pull_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={**QUIET, "ops": {"crm_api_clients": {"config": {"full_refresh": True}}}},
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "crm_api_clients"
    assert "page 1 still failed" in error_text(failure)
    # nothing from the failed client pull, nothing downstream of it (the advisor roster and the rules are independent)
    assert materialized(result) <= {"crm_api_advisors", "territory_rules"}
    pd.testing.assert_frame_equal(store.read("crm_api_clients"), snapshot_before)


def test_an_emptied_landing_zone_does_not_wipe_the_client_book(env):
    assert run_job(env, job="drop_ingest_job").success
    seed = pd.read_csv(env.data_dir / "landing" / "clients.csv", dtype=str)
    (env.data_dir / "landing" / "clients.csv").unlink()  # an unmounted volume looks like this
    result = run_job(env, job="drop_ingest_job")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "client_dim"
    assert "would lose 3 of its 3 clients" in error_text(failure)
    assert len(CsvTables(env.data_dir).read("client_dim")) == 3  # nothing was published
    assert "assignments_fact" not in materialized(result)

    accepted = run_job(
        env, job="drop_ingest_job", run_config={**QUIET, "ops": {"client_dim": {"config": {"accept_client_loss": True}}}}
    )
    assert accepted.success
    check = checks_by_name(accepted)["client_dim_keeps_previous_clients"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["clients_gone"].value == 3
    # which clients: each gone client by key and name, as the drop had them
    listed = check.metadata["sample"].value
    for client_id, name in zip(seed["client_id"], seed["client_name"]):
        assert f"| csv_drop:{client_id} " in listed and name in listed, listed


def test_a_missing_landing_folder_is_an_error_naming_it(env):
    import shutil

    shutil.rmtree(env.data_dir / "landing")
    result = run_job(env, job="drop_ingest_job")
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "landing folder" in error_text(failure) and "does not exist" in error_text(failure)


def test_a_lost_territory_registry_is_not_silently_reissued(env):
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(env)
    job = defs.resolve_job_def("drop_ingest_job")
    assert job.execute_in_process(instance=instance, run_config=QUIET).success
    CsvTables(env.data_dir).path_for("territory_dim").unlink()  # make clean, a failed restore...
    result = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "territory_dim"
    assert "published 4 rows" in error_text(failure) and "reissue_territory_ids" in error_text(failure)
    forced = job.execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {"territory_dim": {"config": {"reissue_territory_ids": True}}}}
    )
    assert forced.success


def test_missing_token_fails_the_pull_at_run_start_naming_the_variable(env, monkeypatch):
    monkeypatch.delenv("CRM_API_TOKEN")
    with pytest.raises(dg.DagsterInvalidConfigError, match='environment variable "CRM_API_TOKEN" which is not set'):
        run_job(env, job="crm_api_pull_job")


def test_drop_runs_do_not_need_the_api_token(env, monkeypatch):
    monkeypatch.delenv("CRM_API_TOKEN")
    result = run_job(env, job="drop_ingest_job")
    assert result.success
    assert {"raw_clients", "client_dim", "territory_dim", "assignments_fact"} <= materialized(result)
    assert len(CsvTables(env.data_dir).read("client_dim")) == 3  # the sample drop; no API snapshot pulled yet
