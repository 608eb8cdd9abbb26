"""``python -m crm_territory.cli run``: materialize every asset and check, print a summary.

This is what ``make run`` executes. With ``--start-mock-api`` it first starts the mock CRM API
(``python -m mock_api``) on a free loopback port with a throw-away token, and stops it at the end.
Runs are recorded in the Dagster instance of DAGSTER_HOME, so they show in ``make dev``'s UI.
Exit code: 0 when the run succeeded and no blocking check failed; 1 otherwise.
"""

import argparse
import contextlib
import fcntl
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from crm_territory import run_in_process
from crm_territory.definitions import build_definitions
from crm_territory.instance.run_worker import fail_dead_runs, worker_tags
from crm_territory.settings import REPO_ROOT, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mock_api_process(token: str, clients: int | None = None) -> Iterator[str]:
    """Start ``python -m mock_api`` on 127.0.0.1 and a free port; yield its base URL; stop it."""
    port = free_port()
    env = {**os.environ, "CRM_API_TOKEN": token}
    if clients is not None:
        env["MOCK_CRM_CLIENTS"] = str(clients)
    log = tempfile.NamedTemporaryFile(prefix="mock_api.", suffix=".log", delete=False)  # noqa: SIM115 (the child writes it for its whole life; removed in finally)
    proc = subprocess.Popen(
        # --exit-with-parent: if this process is killed (SIGKILL runs no finally), the API stops by itself
        [sys.executable, "-m", "mock_api", "--host", "127.0.0.1", "--port", str(port), "--exit-with-parent", str(os.getpid())],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ctrl-C on make does not orphan it, and we stop it ourselves
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the mock CRM API exited early (code {proc.returncode}): {Path(log.name).read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{base_url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mock CRM API did not answer on {base_url} within 30 s; its log: {log.name}")
            time.sleep(0.2)
        print(f"mock CRM API started on {base_url} (pid {proc.pid})")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        Path(log.name).unlink(missing_ok=True)
        print("mock CRM API stopped")


# The local instance (make run, make dev): one run at a time writes the tables (every table-writing asset is in
# the pool crm_tables, limit 1, held at the queue: see infra/dagster.yaml), since every job rewrites the same tables
# and territory_dim is read-modify-write; a burst of drops queues instead of racing. A run whose process dies
# (kill -9, out of memory) would hold that pool for good: the launcher lets `make dev`'s run-monitoring daemon see
# that the process is gone and fail the run within a poll or two (docs/automation.md, "Runs that die"); it does
# not resume runs, hence max_resume_run_attempts 0. Telemetry off.
LOCAL_INSTANCE_YAML = """\
concurrency:
  pools:
    default_limit: 1
    granularity: run
run_launcher:
  module: crm_territory.instance.run_launcher
  class: MonitoredRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  max_resume_run_attempts: 0
telemetry:
  enabled: false
"""

# What earlier versions wrote as the local dagster.yaml, byte for byte. A file equal to one of them is ours and is
# brought up to date; any other content is the user's and is left alone.
PREVIOUS_LOCAL_INSTANCE_YAMLS = (
    "telemetry:\n  enabled: false\n",
    "run_queue:\n  max_concurrent_runs: 1\ntelemetry:\n  enabled: false\n",
    "concurrency:\n  pools:\n    default_limit: 1\n    granularity: run\ntelemetry:\n  enabled: false\n",
)


def ensure_dagster_home(path: Path) -> None:
    """A local instance folder, configured as above unless the user configured it otherwise."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_INSTANCE_YAML)
    elif config.read_text() in PREVIOUS_LOCAL_INSTANCE_YAMLS:
        config.write_text(LOCAL_INSTANCE_YAML)
        print(f"{config}: updated to the current local instance (runs whose process dies are now marked failed)")


def fail_dead_runs_at_start(instance: dg.DagsterInstance) -> None:
    """Mark the instance's STARTED runs whose process is gone as failed, one line each.

    No daemon watches runs under `make run`: without this, a run killed earlier would stay STARTED for good.
    """
    for dead in fail_dead_runs(instance):
        pid = f"pid {dead.pid}" if dead.pid is not None else "its process"
        print(f"run {dead.run_id[:8]} ({dead.job_name}) was still STARTED but {pid} is gone: marked FAILED")


INSTANCE_INIT_LOCK = ".crm-territory-instance-init.lock"


def open_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME, with its storage created under a lock.

    Dagster creates the SQLite tables of a new instance when it is first opened, and two processes doing it at
    once fail ("table runs already exists"): two `make run`s started together on a fresh clone lost one run that
    way. The lock is held only while the storage is opened; the runs themselves then share the instance.
    """
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / INSTANCE_INIT_LOCK, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file closes
        instance = dg.DagsterInstance.get()
        # each storage is created lazily, on first use: use them all while the lock is held
        instance.run_storage.get_runs(limit=1)
        instance.event_log_storage.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.RUN_START), limit=1)
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def _meta(result: dg.JobExecutionResult, asset: str, key: str) -> object:
    """A metadata value of the asset's materialization in this run (None if it did not materialize)."""
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key.to_user_string() == asset and key in materialization.metadata:
            return materialization.metadata[key].value
    return None


def _row_count(result: dg.JobExecutionResult, asset: str) -> object:
    return _meta(result, asset, "dagster/row_count")


def _rejected_files(result: dg.JobExecutionResult) -> list[str]:
    """The files the landing_files_accepted check names (its sample lists batch and reason)."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == "landing_files_accepted" and not evaluation.passed and "sample" in evaluation.metadata:
            rows = str(evaluation.metadata["sample"].value).splitlines()[2:]  # markdown: header, rule, rows
            return [row.split("|")[1].strip() for row in rows if row.startswith("|")]
    return []


def _root_cause(error) -> str:
    """The innermost error message: what went wrong, not the framework's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    text = error.message.strip().splitlines()[-1] if error.message.strip() else "unknown error"
    return re.sub(r"^(?:[a-z_]+\.)+[A-Z]\w*: ", "", text)  # "crm_territory.x.SomeError: why" -> "why"


def _published(run_id: str, settings: Settings) -> str:
    """Whose tables readers see now: this run's set, or (it published nothing) which earlier run's."""
    from crm_territory.storage.csv_set import CsvTableSet

    by_run: dict[str, int] = {}
    for entry in CsvTableSet(settings.data_dir).manifest().values():
        by_run[entry["run_id"]] = by_run.get(entry["run_id"], 0) + 1
    if run_id in by_run:
        return f"{by_run[run_id]} table(s) of this run, as one set"
    before = ", ".join(f"run {other[:8]}" for other in by_run) or "no run yet"
    return f"none of this run's tables; readers still see the tables of {before}"


def summarise(result: dg.JobExecutionResult, settings: Settings, seconds: float) -> tuple[str, bool]:
    """The short summary ``make run`` prints, and whether a blocking check failed."""
    evaluations = result.get_asset_check_evaluations()
    passed = [e for e in evaluations if e.passed]
    warned = [e for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.WARN]
    failed = [e for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    status = "SUCCESS" if result.success and not failed else "FAILED"
    if status == "SUCCESS" and warned:
        status += f" with {len(warned)} warning{'s' if len(warned) > 1 else ''}"  # a rejected file must not look all green
    rejected = _rejected_files(result)

    def fmt(n: Any) -> str:  # a count the asset recorded (an int), or None when it did not materialize
        return "-" if n is None else f"{int(n):,}"

    lines = [
        f"crm-territory run {result.run_id[:8]} ({result.job_def.name}): {status} in {seconds:.1f}s",
        f"  clients            {fmt(_row_count(result, 'client_dim'))} ({fmt(_meta(result, 'client_dim', 'active_clients'))} active)",
        f"  source records     {fmt(_row_count(result, 'client_xref'))} ({fmt(_meta(result, 'client_xref', 'records_merged_into_another'))} merged into another; "
        f"{fmt(_meta(result, 'client_xref', 'possible_pairs_for_review'))} possible matches to review in client_matches)",
        f"  territories        {fmt(_row_count(result, 'territory_dim'))} (including UNASSIGNED)",
        f"  assignments        {fmt(_row_count(result, 'assignments_fact'))} ({fmt(_meta(result, 'assignments_fact', 'current_assignments'))} current)",
        f"  quarantined rows   {fmt(_row_count(result, 'quarantined_clients'))} ({fmt(_meta(result, 'quarantined_clients', 'rows_new_this_run'))} new this run)"
        f"  -> {settings.data_dir / 'quarantine'}",
        f"  rejected files     {fmt(_meta(result, 'ingest_manifest', 'files_rejected'))}"
        + (f" ({', '.join(rejected)})" if rejected else ""),
        f"  checks             {len(passed)} passed, {len(warned)} warned, {len(failed)} failed",
    ]
    for e in warned:
        lines.append(f"    WARN  {e.asset_key.to_user_string()}:{e.check_name}")
    for e in failed:
        lines.append(f"    FAIL  {e.asset_key.to_user_string()}:{e.check_name}")
        if "next_step" in e.metadata:
            lines.append(f"          next: {e.metadata['next_step'].value}")
    if not result.success:
        for event in result.all_events:
            if event.is_resource_init_failure:  # e.g. another run holds the data folder: nothing ran
                # an EngineEventData: its error is the resource's exception
                error = getattr(event.event_specific_data, "error", None)
                lines.append(f"    run stopped before any step: {_root_cause(error) if error else 'a resource failed to start'}")
            if event.is_step_failure:
                error = event.step_failure_data.error
                lines.append(f"    step {event.step_key} failed: {_root_cause(error) if error else 'unknown error'}")
                if event.step_failure_data.user_failure_data and event.step_failure_data.user_failure_data.description:
                    lines.append(f"          {event.step_failure_data.user_failure_data.description}")
    lines.append(f"  outputs            {settings.data_dir}/core, raw, quarantine")
    if settings.storage == "local":
        lines.append(f"  published          {_published(result.run_id, settings)}")
    lines.append("  see the run in the UI: make dev, then open http://127.0.0.1:3000/runs")
    return "\n".join(lines), bool(failed)


def run(full_refresh: bool = False) -> int:
    """materialize_all_job on the settings of the environment, in this process (run_in_process.py: no output kept in memory).

    ``full_refresh``: resolve every pair again rather than only the pairs the changes since the last run touch."""
    settings = Settings.from_env()
    started = time.monotonic()
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if full_refresh:
        run_config["ops"] = {"client_xref": {"config": {"full_refresh": True}}}
    with open_instance() as instance:
        fail_dead_runs_at_start(instance)
        result = run_in_process.execute(
            run_in_process.materialize_all_job,
            instance,
            run_config=run_config,
            tags=worker_tags(),  # names this host, so the pid in the run's RUN_START event can be checked
        )
    summary, blocking_failed = summarise(result, settings, time.monotonic() - started)
    print(summary)
    return 0 if result.success and not blocking_failed else 1


def activate_rules(version: str) -> int:
    """Run activate_rules_job in the local instance (where the preview was recorded)."""
    settings = Settings.from_env()
    job = build_definitions(settings).resolve_job_def("activate_rules_job")
    with open_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={
                "ops": {"activate_candidate_rules": {"config": {"version": version}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
    if not result.success:
        failure = next(e for e in result.all_events if e.is_step_failure)
        data = failure.step_failure_data
        print(data.user_failure_data.description if data.user_failure_data else _root_cause(data.error), file=sys.stderr)
        return 1
    print(f"rules {version} are now active. Run `make run` to apply them.")
    return 0


def apply_warehouse_ddl(ddl_path: Path | None = None) -> int:
    from crm_territory.settings import SettingsError
    from crm_territory.storage.snowflake import connect_from_environment
    from crm_territory.storage.warehouse_ddl import DDL_PATH, apply_ddl

    path = ddl_path or DDL_PATH
    if not path.is_file():
        print(f"{path}: no such DDL file; pass --ddl PATH (infra/snowflake/tables.sql of the repository)", file=sys.stderr)
        return 2
    try:
        with connect_from_environment() as connection:
            statements = apply_ddl(connection, path.read_text())
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"applied {len(statements)} statements from {path} to {os.environ['SNOWFLAKE_DATABASE']}")
    return 0


def writeback(action: str, batch_id: str | None) -> int:
    """``writeback plan|apply|rollback|log``: the write-back of the published plan to the CRM (docs/writeback.md)."""
    import logging

    from crm_territory.defs.resources import table_store_outside_a_run
    from crm_territory.logic.writeback.acts import apply_published_plan, batch_totals, open_journal, rollback
    from crm_territory.logic.writeback.client import WritebackError
    from crm_territory.logic.writeback.plan import plan_summary
    from crm_territory.settings import SettingsError
    from crm_territory.wiring.metadata import markdown_table

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("crm_territory.writeback").info
    try:
        settings = Settings.from_env()
        if action == "plan":
            with table_store_outside_a_run(settings) as store:
                plan = store.read_previous("crm_writeback_plan")
            if plan is None:
                print("no crm_writeback_plan published yet: run the pipeline first (make run)")
                return 0
            parts = plan_summary(plan)
            sent = int((plan["status"] == "send").sum())
            print(
                f"plan {plan['plan_id'].iloc[0] if len(plan) else '(empty)'}: {sent:,} record(s) to change, "
                f"{len(parts['refused']):,} refused"
            )
            print(markdown_table(parts["per_territory"], limit=30))
            if len(parts["refused"]):
                print(markdown_table(parts["refused"], limit=30))
            return 0
        if action == "export":
            from crm_territory.logic.writeback.acts import export_published_outbound
            from crm_territory.logic.writeback.outbound import outbound_layouts
            from crm_territory.resources.landing import LocalLandingZone

            layouts = outbound_layouts(LocalLandingZone(data_dir=str(settings.data_dir)).layouts())
            folder = settings.data_dir / "outbound"
            with table_store_outside_a_run(settings) as store:
                exported = export_published_outbound(store.read_previous("crm_outbound_plan"), layouts, folder)
            for item in exported:
                where = f"{item.records:,} record(s) -> {item.path}" if item.path else f"no file ({item.why_not})"
                print(f"{item.source_system}: {where}; {item.refused:,} refused")
            if not exported:
                print(f"no file source has an owner to change: nothing written under {folder}")
            return 0
        if action == "rollback" and not batch_id:
            print("writeback rollback needs --batch <batch_id> (see: writeback log)", file=sys.stderr)
            return 2
        # the log where the storage is (the data folder, or CORE.CRM_WRITEBACK_LOG): resumable from any machine
        with open_journal(settings) as journal:
            if action == "log":
                print(markdown_table(batch_totals(journal.read()), limit=100))
                return 0
            if action == "rollback":
                summary = rollback(str(batch_id), journal, settings.api_url, log)
            else:
                with table_store_outside_a_run(settings) as store:
                    summary = apply_published_plan(store, journal, settings.api_url, log)
    except (WritebackError, SettingsError, TimeoutError) as exc:
        print(f"writeback {action}: {exc}", file=sys.stderr)
        return 1
    print(summary.describe())
    if summary.records.get("conflict"):
        print(f"{summary.records['conflict']:,} conflict(s) left as the CRM holds them: see `writeback log` and the log file")
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_territory.cli", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset and check, print a summary")
    run_parser.add_argument("--start-mock-api", action="store_true", help="start the mock CRM API for this run, then stop it")
    run_parser.add_argument("--mock-api-clients", type=int, default=None, help="book size of the started mock API")
    run_parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="resolve every record pair again (default: only the pairs the changes since the last run can affect)",
    )
    activate_parser = sub.add_parser("activate-rules", help="make the previewed candidate rules the active rules")
    activate_parser.add_argument("--version", required=True, help="the candidate version shown by assignments_preview")
    ddl_parser = sub.add_parser(
        "apply-ddl", help="create the RAW and CORE tables in Snowflake (infra/snowflake/tables.sql); idempotent"
    )
    ddl_parser.add_argument(
        "--ddl", type=Path, default=None, help="the DDL file (default: infra/snowflake/tables.sql of this checkout)"
    )
    wb_parser = sub.add_parser(
        "writeback",
        help="the CRM write-back: show the plan, apply it, roll a batch back, list the log's batches, or export the "
        "file sources' import files (data/outbound/)",
    )
    wb_parser.add_argument("action", choices=["plan", "apply", "rollback", "log", "export"])
    wb_parser.add_argument("--batch", default=None, help="rollback: the batch_id to undo (from `writeback log`)")
    args = parser.parse_args(argv)

    if args.command == "writeback":
        return writeback(args.action, args.batch)
    if args.command == "apply-ddl":
        return apply_warehouse_ddl(args.ddl)
    if args.command == "activate-rules":
        if not os.environ.get("DAGSTER_HOME"):
            os.environ["DAGSTER_HOME"] = str(REPO_ROOT / ".dagster_home")
        ensure_dagster_home(Path(os.environ["DAGSTER_HOME"]))
        return activate_rules(args.version)

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(REPO_ROOT / ".dagster_home")
    ensure_dagster_home(Path(os.environ["DAGSTER_HOME"]))

    if args.start_mock_api:
        token = os.environ.get("CRM_API_TOKEN") or secrets.token_urlsafe(24)
        os.environ["CRM_API_TOKEN"] = token
        with mock_api_process(token, args.mock_api_clients) as base_url:
            os.environ["CRM_API_URL"] = base_url
            return run(args.full_refresh)
    if not os.environ.get("CRM_API_TOKEN"):
        print("CRM_API_TOKEN is not set: export the CRM API's token, or pass --start-mock-api", file=sys.stderr)
        return 2
    return run(args.full_refresh)


if __name__ == "__main__":
    sys.exit(main())
