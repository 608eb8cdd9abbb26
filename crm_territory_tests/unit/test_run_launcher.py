"""Runs whose process is gone: the /proc liveness check, the verdict on a run, the launcher Dagster asks.

Every process here is real: a child we start (``sleep``) and kill with SIGKILL. The runs live in a real temporary
Dagster instance (SQLite); their RUN_START event is recorded through the instance with the pid of that child, as
a run worker's would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import WorkerStatus

from crm_territory.cli import LOCAL_INSTANCE_YAML, PREVIOUS_LOCAL_INSTANCE_YAMLS, ensure_dagster_home
from crm_territory.instance.liveness import (
    START_TIME_SLACK_SECONDS,
    HostIdentity,
    WorkerState,
    process_start_time,
    this_host,
    worker_state,
)
from crm_territory.instance.run_launcher import MonitoredRunLauncher, worker_host_tag_value
from crm_territory.instance.run_worker import WORKER_HOST_TAG, fail_dead_runs, judge_run, worker_tags

LINUX = Path("/proc/self/stat").exists()
linux_only = pytest.mark.skipif(not LINUX, reason="start times come from /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that runs until we kill it."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _wait_until_exited(pid: int) -> None:
    """Until the kernel has finished killing ``pid`` (it may still be a zombie); bounded."""
    deadline = time.monotonic() + 10
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return
        time.sleep(0.02)
    pytest.fail(f"pid {pid} did not exit within 10 s of SIGKILL")


# --- liveness: plain functions over /proc -------------------------------------------------------------------------


def test_a_running_process_that_started_before_the_run_is_alive(child):
    assert worker_state(child.pid, time.time()) is WorkerState.ALIVE
    assert worker_state(os.getpid(), time.time()) is WorkerState.ALIVE


@linux_only
def test_a_killed_process_is_gone_even_before_its_parent_reaps_it(child):
    child.send_signal(signal.SIGKILL)
    _wait_until_exited(child.pid)
    assert child.returncode is None, "precondition: not reaped yet, so /proc still lists it as a zombie"
    assert worker_state(child.pid, time.time()) is WorkerState.GONE
    child.wait(timeout=10)
    assert worker_state(child.pid, time.time()) is WorkerState.GONE


@linux_only
def test_a_process_that_started_after_the_run_is_not_its_worker(child):
    # What a reused pid looks like: a live process with the pid, started well after the run's RUN_START.
    run_started_at = time.time() - 3 * START_TIME_SLACK_SECONDS
    assert worker_state(child.pid, run_started_at) is WorkerState.PID_REUSED


@linux_only
def test_process_start_time_reads_the_kernel_clock():
    before = time.time()
    proc = subprocess.Popen(["sleep", "600"])
    after = time.time()
    try:
        started = process_start_time(proc.pid)
        # /proc gives the boot time in whole seconds: the start can read up to a second early, never late.
        assert started is not None and before - 1.5 <= started <= after + 0.05, (before, started, after)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_pid_no_process_has_is_gone():
    assert worker_state(0, time.time()) is WorkerState.GONE
    assert worker_state(2**22 + 12345, time.time()) is WorkerState.GONE  # above any pid_max


def test_host_identity_round_trips_through_its_tag():
    here = this_host()
    assert HostIdentity.from_tag(here.to_tag()) == here
    assert HostIdentity.from_tag("grpc:user-code") is None
    if LINUX:
        assert here.boot_id and here.pid_namespace.startswith("pid:[")


# --- the verdict on a run of a real instance ----------------------------------------------------------------------


@dg.op
def noop() -> None:
    pass


@dg.job
def tiny_job() -> None:
    noop()


@pytest.fixture
def instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    ensure_dagster_home(home)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as inst:
        yield inst


def _started_run(instance: dg.DagsterInstance, pid: int, tags: dict[str, str], *, at: float | None = None) -> dg.DagsterRun:
    """A run recorded STARTED by a RUN_START event carrying ``pid``, as a run worker records it."""
    run = instance.create_run_for_job(tiny_job, tags=tags)
    event = DagsterEvent(dg.DagsterEventType.RUN_START.value, run.job_name, pid=pid)
    instance.report_dagster_event(event, run.run_id, timestamp=at)
    started = instance.get_run_by_id(run.run_id)
    assert started is not None and started.status == dg.DagsterRunStatus.STARTED
    return started


def test_the_run_of_a_live_worker_is_left_alone(instance, child):
    run = _started_run(instance, child.pid, worker_tags())
    verdict = judge_run(instance, run)
    assert verdict.alive is True and verdict.pid == child.pid
    assert fail_dead_runs(instance) == []
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED


@linux_only
def test_the_run_of_a_killed_worker_is_marked_failed_with_the_pid_and_what_to_do(instance, child):
    run = _started_run(instance, child.pid, worker_tags())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)

    verdict = judge_run(instance, run)
    assert verdict.alive is False
    assert f"pid {child.pid}" in verdict.message and "Run the job again" in verdict.message

    (failed,) = fail_dead_runs(instance)
    assert (failed.run_id, failed.job_name, failed.pid) == (run.run_id, "tiny_job", child.pid)
    after = instance.get_run_by_id(run.run_id)
    assert after.status == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert failure.event_log_entry.dagster_event.message == verdict.message
    assert fail_dead_runs(instance) == [], "a run is marked once"


@linux_only
def test_a_run_whose_pid_now_belongs_to_a_later_process_is_failed(instance, child):
    run = _started_run(instance, child.pid, worker_tags(), at=time.time() - 3 * START_TIME_SLACK_SECONDS)
    verdict = judge_run(instance, run)
    assert verdict.alive is False and "another process, started later" in verdict.message


def test_a_run_on_another_host_is_never_judged_from_here(instance):
    elsewhere = HostIdentity("another-host", "0d5a-other-boot", "pid:[4026531836]")
    run = _started_run(instance, 2**22 + 12345, worker_tags(elsewhere))  # a pid that does not exist here
    verdict = judge_run(instance, run)
    assert verdict.alive is None and "another-host" in verdict.message
    assert fail_dead_runs(instance) == []


def test_a_run_of_this_host_before_a_restart_is_gone(instance):
    here = this_host()
    if not here.boot_id:
        pytest.skip("no boot id on this system")
    before_reboot = HostIdentity(here.hostname, "an-earlier-boot", here.pid_namespace)
    run = _started_run(instance, os.getpid(), worker_tags(before_reboot))  # the pid is alive: it is not looked at
    verdict = judge_run(instance, run)
    assert verdict.alive is False and "restarted" in verdict.message


def test_an_untagged_run_is_judged_in_a_local_instance(instance, child):
    # Runs recorded before the tag existed: a SQLite instance is written from this machine only.
    run = _started_run(instance, child.pid, {})
    assert judge_run(instance, run).alive is True
    child.kill()
    child.wait(timeout=10)
    assert judge_run(instance, run).alive is False


# --- the launcher the daemon asks -----------------------------------------------------------------------------------


def test_the_local_instance_uses_the_launcher_and_monitoring(instance, child):
    launcher = instance.run_launcher
    assert isinstance(launcher, MonitoredRunLauncher) and launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_monitoring_poll_interval_seconds <= 60, "the queue must move on within a minute or two"

    run = _started_run(instance, child.pid, worker_tags())
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    child.kill()
    child.wait(timeout=10)
    result = launcher.check_run_worker_health(run)
    assert result.status == WorkerStatus.FAILED and f"pid {child.pid}" in (result.msg or "")

    elsewhere = _started_run(instance, child.pid, worker_tags(HostIdentity("another-host", "b", "pid:[1]")))
    assert launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING, "cannot tell is not a failure"


def test_launched_runs_name_the_host_of_their_code_server():
    here = worker_tags()[WORKER_HOST_TAG]
    assert worker_host_tag_value('{"host": "localhost", "port": 4000}') == here
    assert worker_host_tag_value('{"host": "127.0.0.1", "port": 4000}') == here
    assert worker_host_tag_value('{"host": "localhost", "socket": "/tmp/x.sock"}') == here
    assert worker_host_tag_value('{"host": "user-code", "port": 4000}') == "grpc:user-code"
    assert worker_host_tag_value(None) is None


# --- the local dagster.yaml -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("previous", PREVIOUS_LOCAL_INSTANCE_YAMLS)
def test_a_local_dagster_yaml_we_wrote_earlier_is_upgraded(tmp_path, previous):
    (tmp_path / "dagster.yaml").write_text(previous)
    ensure_dagster_home(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == LOCAL_INSTANCE_YAML


def test_a_local_dagster_yaml_the_user_edited_is_left_alone(tmp_path):
    edited = PREVIOUS_LOCAL_INSTANCE_YAMLS[-1] + "# mine\n"
    (tmp_path / "dagster.yaml").write_text(edited)
    ensure_dagster_home(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == edited


def test_the_local_dagster_yaml_is_valid_for_the_installed_dagster(tmp_path):
    ensure_dagster_home(tmp_path)
    ref = InstanceRef.from_dir(str(tmp_path))  # Dagster's own schema check of every key
    assert ref.settings["run_monitoring"] == {"enabled": True, "poll_interval_seconds": 30, "max_resume_run_attempts": 0}
    assert type(ref.run_launcher) is MonitoredRunLauncher
