"""Real Dagster processes for tests: start them in their own process group, stop the whole group, talk GraphQL.

- ``start_group(argv, env, log_path)``: a process in its own session (``dagster-daemon``, ``dagster-webserver``,
  ``dg dev``), its output appended to ``log_path``; ``stop_group(proc)`` ends it and everything it started.
- ``start_until_server_info(argv, env, log_path, timeout)``: a webserver on a free loopback port, returned once
  ``/server_info`` answers (``argv`` is built from the port, and the start is retried when the port was taken).
- ``Dagster``: a minimal GraphQL client whose failures carry the server log; ``repository_selector`` and
  ``wait_for_run`` on top of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, free_port

__all__ = [
    "LOCATION_NAME",
    "RUN_TIMEOUT_S",
    "STARTUP_TIMEOUT_S",
    "TERMINAL_STATUSES",
    "Dagster",
    "free_port",
    "log_tail",
    "repository_selector",
    "start_group",
    "start_until_server_info",
    "stop_group",
    "wait_for_run",
]

LOCATION_NAME = "crm_territory"  # workspace.yaml's location_name
STARTUP_TIMEOUT_S = 90
RUN_TIMEOUT_S = 240
TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def webserver_env(dagster_home: Path, data_dir: Path, api_url: str) -> dict[str, str]:
    """The environment of a webserver the tests start: this process's, without its CRM_* and DAGSTER_* settings,
    pointed at the test's instance, data folder and mock CRM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home), CRM_DATA_DIR=str(data_dir), CRM_API_URL=api_url, CRM_API_TOKEN=TEST_TOKEN,
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


def log_tail(path: Path, chars: int = 6000) -> str:
    """The last ``chars`` characters of a process's log, for a failure message."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "<no log>"
    return text[-chars:]


def start_group(argv: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the checkout, output appended to ``log_path``, in a process group of its own.

    Its own session: the group holds what it starts (a code server, run workers), which ``stop_group`` ends
    with it, and nothing else.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """Stop the process group of ``proc`` (started by ``start_group``): SIGTERM, ``grace`` seconds, then SIGKILL."""
    pgid = proc.pid  # with start_new_session the leader's pid is the group id, even once the leader is gone
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader exited; make sure no child of the group is left behind
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        break


def start_until_server_info(
    argv: Callable[[int], Sequence[str]],
    env: dict[str, str],
    log_path: Path,
    timeout: float = STARTUP_TIMEOUT_S,
    *,
    name: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``argv(port)`` on a free loopback port; return it and its base URL once ``/server_info`` answers.

    Fails the test, with the log's tail, if it does not answer within ``timeout`` seconds.
    """
    for attempt in range(3):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        command = list(argv(port))
        proc = start_group(command, env, log_path)
        try:
            deadline = time.monotonic() + timeout
            with httpx.Client(timeout=2.0) as client:
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        if client.get(f"{base_url}/server_info").status_code == 200:
                            return proc, base_url
                    except httpx.TransportError:
                        pass  # not listening yet
                    time.sleep(0.25)
        except BaseException:
            stop_group(proc)
            raise
        stop_group(proc)
        # Another process may take the port between free_port() and the bind: worth a retry.
        if "address already in use" in log_tail(log_path).lower() and attempt < 2:
            continue
        pytest.fail(
            f"{name or Path(command[0]).name} did not answer /server_info on {base_url} within {timeout:.0f}s "
            f"(exit code {proc.returncode}).\n--- log (tail) ---\n{log_tail(log_path)}",
            pytrace=False,
        )
    raise AssertionError("unreachable")


class Dagster:
    """A minimal GraphQL client for the webserver, whose failures carry the server log."""

    def __init__(self, base_url: str, log_path: Path) -> None:
        self.base_url = base_url
        self.log_path = log_path
        self.http = httpx.Client(base_url=base_url, timeout=30.0)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- webserver log (tail) ---\n{log_tail(self.log_path)}", pytrace=False)

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        if response.status_code != 200:
            self.fail(f"GraphQL answered HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            self.fail(f"GraphQL errors: {body['errors']}")
        return body["data"]


WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name jobs { name } } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName }
    ... on Error { message }
  }
}
"""


def repository_selector(
    dagster: Dagster, job_name: str, location_name: str = LOCATION_NAME, timeout: float = STARTUP_TIMEOUT_S
) -> dict[str, str]:
    """Wait until the code location is loaded; return the selector of the repository holding ``job_name``."""
    deadline = time.monotonic() + timeout
    entries: list[dict[str, Any]] = []
    while True:
        workspace = dagster.query(WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            dagster.fail(f"workspaceOrError: {workspace}")
        entries = workspace["locationEntries"]
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if entries and len(loaded) == len(entries):
            break
        if time.monotonic() > deadline:
            dagster.fail(f"the workspace did not finish loading within {timeout:.0f}s: {entries}")
        time.sleep(0.5)

    for entry in entries:
        location = entry["locationOrLoadError"]
        if location is None or location["__typename"] != "RepositoryLocation":
            dagster.fail(f"code location {entry['name']} failed to load: {location}")
    selectors = [
        {"repositoryLocationName": entry["locationOrLoadError"]["name"], "repositoryName": repo["name"]}
        for entry in entries
        for repo in entry["locationOrLoadError"]["repositories"]
        if job_name in {job["name"] for job in repo["jobs"]}
    ]
    if len(selectors) != 1:
        dagster.fail(f"expected exactly one repository with {job_name}, found {selectors} in {entries}")
    assert selectors[0]["repositoryLocationName"] == location_name
    return selectors[0]


def wait_for_run(dagster: Dagster, run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
    """Poll the run until it ends; return its status (SUCCESS, FAILURE or CANCELED)."""
    deadline = time.monotonic() + timeout
    while True:
        run = dagster.query(RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            dagster.fail(f"runOrError({run_id}): {run}")
        if run["status"] in TERMINAL_STATUSES:
            return run["status"]
        if time.monotonic() > deadline:
            dagster.fail(f"run {run_id} still {run['status']} after {timeout:.0f}s")
        time.sleep(1.0)
