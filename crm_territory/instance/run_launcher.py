"""``MonitoredRunLauncher``: Dagster's DefaultRunLauncher, with run workers the run-monitoring daemon can check.

The daemon fails a STARTED run whose worker is gone only if the launcher can say so
(``supports_check_run_worker_health``); DefaultRunLauncher cannot, so a killed run stayed STARTED for good and
held the crm_tables pool. The answer comes from ``run_worker.judge_run``; this class only wires it in.

Configured in the local instance (crm_territory/cli.py, LOCAL_INSTANCE_YAML) and infra/dagster.yaml::

    run_launcher:
      module: crm_territory.instance.run_launcher
      class: MonitoredRunLauncher
"""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from crm_territory.instance.liveness import this_host
from crm_territory.instance.run_worker import WORKER_HOST_TAG, judge_run, worker_tags

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def worker_host_tag_value(grpc_info: str | None) -> str | None:
    """The WORKER_HOST_TAG of a run launched through the code server described by its GRPC_INFO_TAG.

    The code server starts the run worker, so the worker's pid is taken on the code server's host: this host
    when the server listens on a loopback address or a socket; another one (never checked from here) otherwise.
    """
    if not grpc_info:
        return None
    info = json.loads(grpc_info)
    if info.get("socket") or info.get("host") in LOOPBACK_HOSTS:
        return worker_tags()[WORKER_HOST_TAG]
    return f"grpc:{info.get('host')}"


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher (each run a process started by its code server) that answers worker health checks."""

    def launch_run(self, context: LaunchRunContext) -> None:
        super().launch_run(context)
        run = self._instance.get_run_by_id(context.dagster_run.run_id)
        value = worker_host_tag_value(run.tags.get(GRPC_INFO_TAG)) if run else None
        if run and value:
            self._instance.add_run_tags(run.run_id, {WORKER_HOST_TAG: value})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # "Cannot tell" must read as RUNNING: the daemon fails a run on any other status.
        verdict = judge_run(self._instance, run, this_host())
        status = WorkerStatus.FAILED if verdict.alive is False else WorkerStatus.RUNNING
        return CheckRunHealthResult(status, verdict.message)
