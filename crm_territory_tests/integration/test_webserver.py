"""End to end through the real Dagster webserver: launch ``materialize_all_job`` over GraphQL.

A real mock CRM API (``run_mock_api``) serves a small book; ``dagster-webserver`` loads the code
location from ``workspace.yaml`` exactly as a developer would, with a throw-away DAGSTER_HOME whose
run coordinator launches runs immediately (no daemon). The test launches the job through the
GraphQL API, waits for it to finish, then checks the run's asset check evaluations and the CSV
tables written under the tmp data folder.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from crm_territory_tests.support.dagster_servers import (
    Dagster,
    repository_selector,
    start_until_server_info,
    stop_group,
    wait_for_run,
    webserver_env,
)
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, auth_headers, run_mock_api

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
N_API_CLIENTS = 300
# A seed whose 300-client book holds a few nameless records, so the quarantine is exercised.
API_SEED = 2
JOB_NAME = "materialize_all_job"
RUN_COORDINATOR_MODULE = "dagster._core.run_coordinator"
RUN_COORDINATOR_CLASS = "DefaultRunCoordinator"
CORE_TABLES = ("client_dim", "territory_dim", "assignments_fact")
ASSETS = ("crm_api_clients", "raw_clients", "quarantined_clients", "ingest_manifest", *CORE_TABLES)


# --------------------------------------------------------------------------- helpers


def _start_webserver(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start dagster-webserver on a free loopback port; return it once /server_info answers."""
    exe = Path(sys.executable).parent / "dagster-webserver"
    assert exe.exists(), f"dagster-webserver is not installed next to {sys.executable}"
    workspace = str(REPO_ROOT / "workspace.yaml")
    return start_until_server_info(lambda port: [str(exe), "-h", "127.0.0.1", "-p", str(port), "-w", workspace], env, log_path)


def _write_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(
        f"run_coordinator:\n  module: {RUN_COORDINATOR_MODULE}\n  class: {RUN_COORDINATOR_CLASS}\ntelemetry:\n  enabled: false\n"
    )
    return path


LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_CHECKS_QUERY = """
query RunChecks($runId: ID!, $afterCursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      assetChecks { name assetKey { path } }
      eventConnection(afterCursor: $afterCursor, limit: 1000) {
        cursor
        hasMore
        events {
          __typename
          ... on MessageEvent { message }
          ... on StepEvent { stepKey }
          ... on AssetCheckEvaluationEvent {
            evaluation { checkName success severity assetKey { path } }
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 10) {
    runId
    status
    evaluation { success severity }
  }
}
"""


# what the asset page shows: the latest materialization's metadata
LATEST_METADATA_QUERY = """
query LatestMetadata($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
          ... on BoolMetadataEntry { boolValue }
        }
      }
    }
  }
}
"""


def _latest_metadata(dagster: Dagster, asset: str, run_id: str) -> dict[str, Any]:
    found = dagster.query(LATEST_METADATA_QUERY, {"assetKey": {"path": [asset]}})["assetOrError"]
    assert found["__typename"] == "Asset", found
    (latest,) = found["assetMaterializations"]
    assert latest["runId"] == run_id
    return {e["label"]: e.get("mdStr", e.get("text", e.get("boolValue"))) for e in latest["metadataEntries"]}


def _markdown_rows(table: str) -> list[list[str]]:
    """The cells of a markdown table (header first, the separator line left out)."""
    lines = [line for line in table.splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _launch(dagster: Dagster, selector: dict[str, str]) -> str:
    params = {"selector": {**selector, "jobName": JOB_NAME}, "runConfigData": {}}
    result = dagster.query(LAUNCH_RUN_MUTATION, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        dagster.fail(f"launchRun did not launch {JOB_NAME}: {result}")
    return result["run"]["runId"]


def _run_events_and_checks(dagster: Dagster, run_id: str) -> tuple[list[dict], set[tuple[str, str]]]:
    """Every event of the run (paged), and the (asset, check) pairs the run was planned to execute."""
    events: list[dict] = []
    cursor = None
    planned: set[tuple[str, str]] = set()
    for _ in range(100):
        run = dagster.query(RUN_CHECKS_QUERY, {"runId": run_id, "afterCursor": cursor})["runOrError"]
        if run["__typename"] != "Run":
            dagster.fail(f"runOrError({run_id}): {run}")
        planned = {("/".join(c["assetKey"]["path"]), c["name"]) for c in run["assetChecks"] or []}
        connection = run["eventConnection"]
        events.extend(connection["events"])
        cursor = connection["cursor"]
        if not connection["hasMore"]:
            return events, planned
    dagster.fail(f"the event log of run {run_id} did not end after 100 pages")
    raise AssertionError("unreachable")


def _failure_summary(events: list[dict]) -> str:
    lines = [
        f"{e['__typename']} {e.get('stepKey') or ''}: {(e.get('message') or '')[:500]}"
        for e in events
        if "Failure" in e["__typename"] or "Error" in e["__typename"]
    ]
    return "\n".join(lines) or "<no failure events>"


def _api_records(base_url: str) -> list[dict[str, Any]]:
    """Every record the mock API serves, read over HTTP (the test's own view of the source)."""
    records: list[dict[str, Any]] = []
    with httpx.Client(base_url=base_url, headers=auth_headers(TEST_TOKEN), timeout=10.0) as client:
        page: int | None = 1
        while page is not None:
            body = client.get("/clients", params={"page": page, "page_size": 1000}).raise_for_status().json()
            records.extend(body["data"])
            page = body["next_page"]
    return records


def _read_text_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


# --------------------------------------------------------------------------- the test


def test_materialize_all_job_through_the_webserver(tmp_path: Path) -> None:
    # The run coordinator named in dagster.yaml must exist in the installed dagster.
    coordinator = getattr(importlib.import_module(RUN_COORDINATOR_MODULE), RUN_COORDINATOR_CLASS)
    assert callable(coordinator)

    data_dir = tmp_path / "data"
    for sub in ("landing", "reference", "rules"):
        shutil.copytree(REPO_ROOT / "data" / sub, data_dir / sub)
    dagster_home = _write_dagster_home(tmp_path / "dagster_home")
    log_path = tmp_path / "webserver.log"

    with run_mock_api(clients=N_API_CLIENTS, seed=API_SEED) as api_url:
        env = webserver_env(dagster_home, data_dir, api_url)
        proc, base_url = _start_webserver(env, log_path)
        dagster = Dagster(base_url, log_path)
        try:
            selector = repository_selector(dagster, JOB_NAME)
            run_id = _launch(dagster, selector)
            status = wait_for_run(dagster, run_id)
            events, planned_checks = _run_events_and_checks(dagster, run_id)
            if status != "SUCCESS":
                dagster.fail(f"run {run_id} ended {status}:\n{_failure_summary(events)}")

            # --- asset checks: all planned ones executed, none blocking failed
            evaluations = [e["evaluation"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"]
            assert evaluations, "the run recorded no asset check evaluation"
            evaluated = {("/".join(ev["assetKey"]["path"]), ev["checkName"]): ev for ev in evaluations}
            assert planned_checks, "the run planned no asset checks"
            not_executed = planned_checks - set(evaluated)
            assert not not_executed, f"checks planned but not evaluated: {sorted(not_executed)}"
            blocking_failures = [ev for ev in evaluations if not ev["success"] and ev["severity"] == "ERROR"]
            assert not blocking_failures, f"blocking checks failed: {blocking_failures}"
            schema_check = evaluated.get(("assignments_fact", "assignments_fact_matches_schema"))
            assert schema_check is not None and schema_check["success"], schema_check
            # every asset's schema check ran and passed
            schema_checks = {asset: evaluated.get((asset, f"{asset}_matches_schema")) for asset in ASSETS}
            assert all(ev is not None and ev["success"] for ev in schema_checks.values()), schema_checks

            # the same result through the asset check's execution history
            executions = dagster.query(
                CHECK_EXECUTIONS_QUERY,
                {"assetKey": {"path": ["assignments_fact"]}, "checkName": "assignments_fact_matches_schema"},
            )["assetCheckExecutions"]
            ours = [ex for ex in executions if ex["runId"] == run_id]
            assert len(ours) == 1, executions
            assert ours[0]["status"] == "SUCCEEDED" and ours[0]["evaluation"]["success"], ours

            # the match model and why each pair scored what it did, on the asset pages
            model = _latest_metadata(dagster, "match_model", run_id)
            assert model["re_estimated"] is True and "first estimate" in model["why"]
            header, *rows = _markdown_rows(model["parameters"])
            assert {"field", "level", "m", "m_source", "u", "points", "decision_pairs"} <= set(header), header
            assert {("region", "agree"), ("parent_org", "disagree")} <= {(r[0], r[1]) for r in rows}, rows
            header, *rows = _markdown_rows(_latest_metadata(dagster, "client_matches", run_id)["preview"])
            parts = ["name_points", "region_points", "parent_org_points", "advisor_email_points", "advisor_domain_points"]
            assert rows and set(parts) <= set(header), header
            for row in rows:  # the score read back as the sum of its parts
                cell = dict(zip(header, row))
                total = sum(float(cell[p]) for p in parts) + float(cell["field_points"] or 0)
                assert abs(total - float(cell["score"])) < 0.02, cell

            api_records = _api_records(api_url)
        finally:
            dagster.http.close()
            stop_group(proc)

    # --- the tables the run wrote under the tmp data folder
    for table in CORE_TABLES:
        assert (data_dir / "core" / f"{table}.csv").is_file(), f"core/{table}.csv was not written"
    quarantine_path = data_dir / "quarantine" / "quarantined_clients.csv"
    assert quarantine_path.is_file(), "quarantine/quarantined_clients.csv was not written"

    api_ids = {record["client_id"] for record in api_records}
    assert len(api_records) == len(api_ids) == N_API_CLIENTS
    nameless_ids = {r["client_id"] for r in api_records if not (r["client_name"] or "").strip()}
    assert nameless_ids, f"precondition: the book of seed {API_SEED} should hold nameless records to quarantine"
    drop_ids: set[str] = set()
    for drop in sorted((data_dir / "landing").glob("*.csv")):
        drop_ids.update(_read_text_table(drop)["client_id"].dropna())
    assert drop_ids, "the sample drop holds no client"

    quarantined = _read_text_table(quarantine_path)
    quarantined_api = quarantined[quarantined["source_system"] == "crm_api"]
    quarantined_drop = quarantined[quarantined["source_system"] == "csv_drop"]
    assert quarantined_api["source_record_id"].notna().all(), "every mock API record has an id"
    assert set(quarantined_api["source_record_id"]) <= api_ids
    # a record without a name cannot be used: it must be in the quarantine, not in client_dim
    assert nameless_ids <= set(quarantined_api["source_record_id"]), quarantined_api

    # every usable source record is in client_xref, under one client; the planted duplicates merge
    expected_records = {f"crm_api:{i}" for i in api_ids - set(quarantined_api["source_record_id"])}
    expected_records |= {f"csv_drop:{i}" for i in drop_ids - set(quarantined_drop["source_record_id"].dropna())}
    xref = _read_text_table(data_dir / "core" / "client_xref.csv")
    assert set(xref["source_system"] + ":" + xref["source_record_id"]) == expected_records and len(xref) == len(expected_records)
    client_dim = _read_text_table(data_dir / "core" / "client_dim.csv")
    expected_keys = set(xref["client_key"])
    assert set(client_dim["client_key"]) == expected_keys and len(client_dim) == len(expected_keys)
    assert expected_keys <= expected_records  # on a first run each client is named after one of its records
    assert len(expected_keys) < len(expected_records), "the mock book's planted duplicates should merge"

    territory_dim = _read_text_table(data_dir / "core" / "territory_dim.csv")
    assignments = _read_text_table(data_dir / "core" / "assignments_fact.csv")
    assert len(territory_dim) > 0
    assert set(assignments["client_key"]) == expected_keys
    assert set(assignments["territory_id"]) <= set(territory_dim["territory_id"])
