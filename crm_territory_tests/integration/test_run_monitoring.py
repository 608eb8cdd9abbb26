"""A run whose process is killed is marked failed, and the queue moves on. Real processes throughout.

Each test starts a real ``python -m crm_territory.cli run`` against a real mock CRM API slowed by its latency knob,
waits until the run is STARTED in a temporary local instance (the dagster.yaml ``make run`` writes), and kills the
CLI with SIGKILL: no handler runs, the run stays STARTED. Then either

- the real ``dagster-daemon run`` on that instance (its run monitoring, a 2 s poll here instead of 30 s) marks the
  run FAILURE with our message, and the drop sensor's run, held by the crm_tables pool until then, runs; or
- the next ``cli run`` marks it failed itself, says so in one line, and runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from crm_territory.cli import LOCAL_INSTANCE_YAML, ensure_dagster_home
from crm_territory.instance.run_worker import WORKER_HOST_TAG, worker_tags
from crm_territory.storage.writer_lock import LOCK_NAME
from crm_territory_tests.support.cli_run import cli_run_env
from crm_territory_tests.support.dagster_servers import log_tail, start_group, stop_group
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, run_mock_api

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
API_CLIENTS = 200
# Each /clients request of the slow API takes this long (under the client's 10 s timeout): the run is still
# fetching when we kill it.
SLOW_API_LATENCY_MS = 8000
TEST_POLL_SECONDS = 2
STARTED, SUCCESS, FAILURE = dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _env(data_dir: Path, home: Path, api_url: str) -> dict[str, str]:
    return cli_run_env(data_dir, home, api_url, TEST_TOKEN, drop_prefixes=("CRM_", "DAGSTER_", "MOCK_CRM_", "SNOWFLAKE_"))


def _wait_for(what: str, predicate, timeout: float, details=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{details()}", pytrace=False)
        time.sleep(0.2)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The local instance `make run` writes, with a short monitoring poll so the test need not wait 30 s."""
    path = tmp_path / "dagster_home"
    ensure_dagster_home(path)
    config = path / "dagster.yaml"
    assert "poll_interval_seconds: 30" in LOCAL_INSTANCE_YAML
    config.write_text(config.read_text().replace("poll_interval_seconds: 30", f"poll_interval_seconds: {TEST_POLL_SECONDS}"))
    return path


def _kill_a_cli_run_mid_run(env: dict[str, str], home: Path, log: Path) -> tuple[str, int]:
    """Start `cli run`, SIGKILL it once its run is STARTED; return (run id, the killed pid)."""
    with log.open("wb") as out:
        cli = subprocess.Popen(
            [sys.executable, "-m", "crm_territory.cli", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with _instance(home) as instance:

            def started() -> bool:
                assert cli.poll() is None, f"the CLI ended (exit {cli.returncode}) before we killed it:\n{log_tail(log)}"
                return bool(instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))

            _wait_for("the CLI's run to be STARTED", started, 120, lambda: log_tail(log))
            cli.send_signal(signal.SIGKILL)
            cli.wait(timeout=30)
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED, "precondition: the killed run is left STARTED"
            assert run.tags[WORKER_HOST_TAG] == worker_tags()[WORKER_HOST_TAG]
            return run.run_id, cli.pid
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=30)


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    (record,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    event = record.event_log_entry.dagster_event
    assert event is not None
    return event.message or ""


@pytest.fixture
def slow_api() -> Iterator[str]:
    with run_mock_api(clients=API_CLIENTS, latency_ms=SLOW_API_LATENCY_MS) as url:
        yield url


@contextlib.contextmanager
def _hold_data_folder(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's writer lock: a run launched meanwhile is STARTED and waits in its resource start."""
    with (data_dir / LOCK_NAME).open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _run_start_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    (record,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START).records
    event = record.event_log_entry.dagster_event
    assert event is not None and event.pid is not None
    return event.pid


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a killed worker is reaped by its parent, or by init once that is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # its own process group, which holds the code server it starts and the run workers that server starts:
    # we stop (or kill) exactly those
    return start_group(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")], env, log
    )


def test_the_daemon_fails_killed_runs_and_the_queued_run_goes_ahead(tmp_path, data_dir, home, slow_api):
    env = _env(data_dir, home, slow_api)
    cli_run_id, cli_pid = _kill_a_cli_run_mid_run(env, home, tmp_path / "cli.log")
    log = tmp_path / "daemon.log"

    def daemon_says() -> str:
        return log_tail(log)

    daemons: list[subprocess.Popen[bytes]] = []
    try:
        with _instance(home) as instance:

            def status(run_id: str) -> dg.DagsterRunStatus:
                run = instance.get_run_by_id(run_id)
                assert run is not None
                return run.status

            def sensor_runs() -> list[dg.DagsterRun]:
                return list(reversed(instance.get_runs(dg.RunsFilter(job_name="drop_ingest_job"))))

            with _hold_data_folder(data_dir):
                daemons.append(_start_daemon(env, log))

                # 1. The killed CLI run is marked failed, with the pid and what to do.
                _wait_for("the killed CLI run to be marked FAILURE", lambda: status(cli_run_id) == FAILURE, 120, daemon_says)
                message = _failure_message(instance, cli_run_id)
                assert f"pid {cli_pid}" in message and "no longer exists" in message and "Run the job again" in message

                # 2. A run the daemon launched (the drop sensor's, for the seed's landing file) is STARTED, waits for
                # the data folder we hold, and holds the crm_tables pool.
                _wait_for(
                    "the drop sensor's first run to start",
                    lambda: bool(sensor_runs()) and status(sensor_runs()[0].run_id) == STARTED,
                    180,
                    daemon_says,
                )
                first = sensor_runs()[0]
                assert first.tags[WORKER_HOST_TAG] == worker_tags()[WORKER_HOST_TAG], "launched through a local code server"

                # 3. A new drop: the sensor's next tick asks for a second run, which the pool holds in the queue.
                landing = data_dir / "landing" / "clients.csv"
                os.utime(landing, (time.time(), landing.stat().st_mtime + 60))
                _wait_for("the sensor to ask for a second run", lambda: len(sensor_runs()) == 2, 120, daemon_says)
                second = sensor_runs()[1]
                _wait_for(
                    "the queue to hold the second run behind the first (pool crm_tables)",
                    lambda: f"Run {second.run_id} is blocked by global concurrency limits" in log.read_text(),
                    60,
                    daemon_says,
                )
                assert status(second.run_id) == dg.DagsterRunStatus.QUEUED

                # 4. Kill the daemon, its code server and the first run's worker at once, as a killed `dg dev` or a
                # crashed host would. (A worker killed alone is reported failed by its code server, which survives
                # it; here nobody is left to say that the run ended.)
                worker = _run_start_pid(instance, first.run_id)
                os.killpg(daemons[0].pid, signal.SIGKILL)
                daemons[0].wait(timeout=30)
                _wait_for(f"the run worker (pid {worker}) to be gone", lambda: not _alive(worker), 30)
                assert status(first.run_id) == STARTED, "precondition: the killed launched run is left STARTED"
                assert status(second.run_id) == dg.DagsterRunStatus.QUEUED

                # 5. The daemon comes back (`dg dev` again): the monitoring fails the dead run, the queue moves on.
                restarted_at = time.monotonic()
                daemons.append(_start_daemon(env, log))
                _wait_for(
                    "the killed launched run to be marked FAILURE", lambda: status(first.run_id) == FAILURE, 120, daemon_says
                )
                failed_after = time.monotonic() - restarted_at
                message = _failure_message(instance, first.run_id)
                assert f"pid {worker}" in message and "Run the job again" in message, message
                _wait_for(
                    "the queue to launch the second run",
                    lambda: status(second.run_id) != dg.DagsterRunStatus.QUEUED,
                    60,
                    daemon_says,
                )
                launched_after = time.monotonic() - restarted_at
            # the data folder is free: the second run proceeds
            _wait_for("the second run to end", lambda: status(second.run_id) in (SUCCESS, FAILURE), 240, daemon_says)
            assert status(second.run_id) == SUCCESS, daemon_says()
    finally:
        for daemon in daemons:
            stop_group(daemon, grace=20)
    print(
        f"\nafter the daemon's restart (poll {TEST_POLL_SECONDS} s): the dead launched run was marked FAILURE in "
        f"{failed_after:.1f} s, the queued run launched in {launched_after:.1f} s"
    )


def test_the_next_cli_run_fails_the_killed_run_and_proceeds(tmp_path, data_dir, home, slow_api):
    run_id, pid = _kill_a_cli_run_mid_run(_env(data_dir, home, slow_api), home, tmp_path / "cli.log")

    with run_mock_api(clients=API_CLIENTS) as fast_api:
        result = subprocess.run(
            [sys.executable, "-m", "crm_territory.cli", "run"],
            cwd=REPO_ROOT,
            env=_env(data_dir, home, fast_api),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    line = f"run {run_id[:8]} (materialize_all_job) was still STARTED but pid {pid} is gone: marked FAILED"
    assert result.stdout.splitlines()[0] == line, result.stdout
    assert "SUCCESS" in result.stdout

    with _instance(home) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        assert f"pid {pid}" in _failure_message(instance, run_id)
        statuses = sorted(run.status.value for run in instance.get_runs())
        assert statuses == ["FAILURE", "SUCCESS"]
