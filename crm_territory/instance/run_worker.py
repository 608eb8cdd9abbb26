"""Is a STARTED run's worker still alive? And mark the runs whose worker is gone as failed.

A run whose process dies without a word (kill -9, the out-of-memory killer, a machine that stops) stays STARTED
in the instance for good, and with the crm_tables pool (limit 1) every later table-writing run waits behind it.
``judge_run`` finds the run worker's pid in the run's RUN_START event (for ``python -m crm_territory.cli run``,
the CLI itself) and asks ``liveness`` whether that process still runs. The run-monitoring daemon asks through
``MonitoredRunLauncher``; the CLI asks through ``fail_dead_runs`` before each run, since no daemon runs under
``make run``.

Only a run whose pid was taken where this code runs can be judged: the run's ``WORKER_HOST_TAG`` names that
host (set by the launcher for a local code server, and by the CLI). A run without the tag is judged only in a
local (SQLite) instance, which no other machine writes to: that covers the runs recorded before the tag existed.
Anything else answers "cannot tell", which leaves the run as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

from crm_territory.instance.liveness import HostIdentity, WorkerState, this_host, worker_state

# The host (name | boot id | pid namespace) where the run's worker pid was taken; see liveness.HostIdentity.
WORKER_HOST_TAG = "crm_territory/worker_host"

WHAT_TO_DO = (
    "Nothing else of this run will happen; its tables were published whole or not at all "
    "(docs/storage-and-deploy.md). Run the job again (make run, or Re-execute in the UI); if runs keep dying, "
    "look for the cause in the kernel log (dmesg | grep -i -e oom -e killed)."
)


@dataclass(frozen=True)
class Verdict:
    """``alive``: True (the worker runs), False (it is gone: fail the run) or None (cannot tell here)."""

    alive: bool | None
    message: str
    pid: int | None = None


def worker_tags(host: HostIdentity | None = None) -> dict[str, str]:
    """The tags a run executed in this process carries, so that its pid can be checked later."""
    return {WORKER_HOST_TAG: (host or this_host()).to_tag()}


def _run_start(instance: dg.DagsterInstance, run_id: str) -> dg.EventLogEntry | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    return records[0].event_log_entry if records else None


def _judged_here(instance: dg.DagsterInstance, run: dg.DagsterRun, here: HostIdentity) -> Verdict | None:
    """None if this host may check the run's pid; otherwise the verdict without looking at any pid."""
    recorded = run.tags.get(WORKER_HOST_TAG)
    if recorded is None:
        if isinstance(instance.run_storage, SqliteRunStorage):
            return None
        return Verdict(None, "the run does not record its worker's host: not checked")
    there = HostIdentity.from_tag(recorded)
    if there == here:
        return None
    if there is not None and there.hostname == here.hostname and there.boot_id and there.boot_id != here.boot_id:
        return Verdict(
            False,
            f"The host {here.hostname} has restarted since this run started on it: the run's process is gone. {WHAT_TO_DO}",
        )
    where = there.hostname if there else recorded
    return Verdict(None, f"the run's worker runs on {where}, not here ({here.hostname}): not checked")


def judge_run(instance: dg.DagsterInstance, run: dg.DagsterRun, here: HostIdentity | None = None) -> Verdict:
    """Whether the worker of a STARTED run still runs, with the message to record if it does not."""
    here = here or this_host()
    verdict = _judged_here(instance, run, here)
    if verdict is not None:
        return verdict
    start = _run_start(instance, run.run_id)
    if start is None or start.dagster_event is None or start.dagster_event.pid is None:
        return Verdict(None, "the run has no RUN_START event with a pid: not checked")
    pid = start.dagster_event.pid
    state = worker_state(pid, start.timestamp)
    if state is WorkerState.ALIVE:
        return Verdict(True, f"the run's process (pid {pid}) is running", pid)
    started = datetime.fromtimestamp(start.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    why = "no longer exists" if state is WorkerState.GONE else "now belongs to another process, started later"
    return Verdict(
        False,
        f"The process that ran this run (pid {pid} on {here.hostname}, run started {started}) {why}: it was killed "
        f"(kill -9, the out-of-memory killer, a closed terminal) or stopped before it could record the end of the run. "
        f"{WHAT_TO_DO}",
        pid,
    )


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    job_name: str
    pid: int | None
    message: str


def fail_dead_runs(instance: dg.DagsterInstance, here: HostIdentity | None = None) -> list[FailedRun]:
    """Mark every STARTED run of the instance whose worker is gone as failed; return them."""
    here = here or this_host()
    failed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        verdict = judge_run(instance, run, here)
        if verdict.alive is not False:
            continue
        current = instance.get_run_by_id(run.run_id)  # the daemon may have marked it since we listed it
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue
        instance.report_run_failed(current, verdict.message)
        failed.append(FailedRun(run.run_id, run.job_name, verdict.pid, verdict.message))
    return failed
