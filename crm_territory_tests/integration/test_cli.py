"""``python -m crm_territory.cli run`` (what ``make run`` executes), as a real subprocess.

The command starts the real mock CRM API, runs materialize_all_job into a temporary data folder and
a temporary Dagster instance, prints the summary and stops the API. The tests compare the summary's
numbers with the tables it wrote and with the run recorded in the instance.
"""

import re
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.instance.ref import InstanceRef

from crm_territory.definitions import build_definitions
from crm_territory.logic.matching.quality import pair_quality
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support.cli_run import cli_run_env
from mock_api.generator import client_entities, generate_clients

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
API_CLIENTS = 200


def cli_env(data_dir: Path, dagster_home: Path) -> dict[str, str]:
    return cli_run_env(
        data_dir,
        dagster_home,
        drop=("CRM_API_TOKEN", "CRM_API_URL", "CRM_STORAGE", "DAGSTER_HOME"),
        drop_prefixes=("MOCK_CRM_", "SNOWFLAKE_"),
    )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_territory.cli", "run", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_with_mock_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(env, "--start-mock-api", "--mock-api-clients", str(API_CLIENTS))


def number(text: str) -> int:
    return int(text.replace(",", ""))


def summary_line(stdout: str, label: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.strip().startswith(label)]
    return line


def instance_at(dagster_home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[bool, dg.AssetCheckSeverity]]:
    """check name -> (passed, severity), as the instance recorded them for the run."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        out[evaluation.check_name] = (evaluation.passed, evaluation.severity)
    return out


def assert_mock_api_stopped(stdout: str) -> None:
    started = re.search(r"mock CRM API started on http://127\.0\.0\.1:(\d+) \(pid (\d+)\)", stdout)
    assert started, stdout
    port, pid = int(started.group(1)), int(started.group(2))
    assert stdout.rstrip().splitlines()[-1] == "mock CRM API stopped"
    # the process is gone (its own session: nothing else would have stopped it) ...
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert not (cmdline.exists() and b"mock_api" in cmdline.read_bytes()), f"mock API pid {pid} is still running"
    # ... and nothing listens on its port any more
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on port {port}"


def test_run_with_the_mock_api_prints_a_summary_that_matches_the_tables_and_records_the_run(data_dir, tmp_path):
    home = tmp_path / "dagster_home"
    proc = run_with_mock_api(cli_env(data_dir, home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "CRM_API_TOKEN" not in out and "Bearer" not in out  # the throw-away token is never printed

    store = CsvTables(data_dir)
    clients, territories, fact = store.read("client_dim"), store.read("territory_dim"), store.read("assignments_fact")
    quarantined, manifest = store.read("quarantined_clients"), store.read("ingest_manifest")
    xref = store.read("client_xref")
    assert len(xref) == API_CLIENTS + 3 - len(
        quarantined
    )  # every source record the API and the seed sample sent, minus the quarantine
    # the mock CRM plants duplicates: they merge (checked against the generator's truth), the seed's three stay apart
    truth = pd.Series(
        client_entities(API_CLIENTS, seed=42).to_numpy(),
        index=("crm_api:" + generate_clients(API_CLIENTS, seed=42)["client_id"]).to_numpy(),
    )
    api = xref[xref["source_system"] == "crm_api"]
    found = pair_quality(pd.Series(api["client_key"].to_numpy(), index=("crm_api:" + api["source_record_id"]).to_numpy()), truth)
    assert found.true_pairs > 0 and found.precision >= 0.9 and found.recall >= 0.9, found
    assert len(clients) == xref["client_key"].nunique() < len(xref)
    assert {"csv_drop:1", "csv_drop:2", "csv_drop:3"} <= set(clients["client_key"])

    head = re.search(
        r"crm-territory run ([0-9a-f]{8}) \(materialize_all_job\): SUCCESS(?: with (\d+) warnings?)? in [\d.]+s", out
    )
    assert head, out
    line = summary_line(out, "clients")
    m = re.fullmatch(r"\s+clients\s+([\d,]+) \(([\d,]+) active\)", line)
    assert m, line
    assert (number(m[1]), number(m[2])) == (len(clients), int(clients["is_active"].sum()))
    m = re.fullmatch(
        r"\s+source records\s+([\d,]+) \(([\d,]+) merged into another; ([\d,]+) possible matches to review in client_matches\)",
        summary_line(out, "source records"),
    )
    assert m, summary_line(out, "source records")
    matches = store.read("client_matches")
    assert (number(m[1]), number(m[2]), number(m[3])) == (
        len(xref),
        len(xref) - len(clients),
        int((matches["decision"] == "possible").sum()),
    )
    m = re.fullmatch(r"\s+territories\s+([\d,]+) \(including UNASSIGNED\)", summary_line(out, "territories"))
    assert m and number(m[1]) == len(territories)
    assert "UNASSIGNED" in set(territories["territory_id"])
    m = re.fullmatch(r"\s+assignments\s+([\d,]+) \(([\d,]+) current\)", summary_line(out, "assignments"))
    assert m and (number(m[1]), number(m[2])) == (len(fact), int(fact["is_current"].sum()))
    m = re.fullmatch(r"\s+quarantined rows\s+([\d,]+) \(([\d,]+) new this run\)\s+-> (.+)", summary_line(out, "quarantined rows"))
    assert m and number(m[1]) == number(m[2]) == len(quarantined)  # a first run: every quarantined row is new
    assert Path(m[3]) == data_dir.resolve() / "quarantine"
    m = re.fullmatch(r"\s+rejected files\s+([\d,]+)", summary_line(out, "rejected files"))
    assert m and number(m[1]) == int((manifest["status"] == "rejected").sum()) == 0
    m = re.fullmatch(r"\s+checks\s+(\d+) passed, (\d+) warned, (\d+) failed", summary_line(out, "checks"))
    assert m, out
    passed, warned, failed = int(m[1]), int(m[2]), int(m[3])
    assert failed == 0

    # the run is in the DAGSTER_HOME instance, with every check the code location defines
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "materialize_all_job"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.run_id.startswith(head[1])
        checks = check_results(instance, run.run_id)
    env_settings = Settings(data_dir=data_dir, storage="local", api_url="http://unused")
    defined = {key.name for key in build_definitions(env_settings).get_repository_def().asset_graph.asset_check_keys}
    assert set(checks) == defined
    assert passed + warned + failed == len(checks)
    assert passed == sum(ok for ok, _ in checks.values())
    warned_names = sorted(name for name, (ok, severity) in checks.items() if not ok and severity == dg.AssetCheckSeverity.WARN)
    assert warned == len(warned_names) == int(head[2] or 0)
    assert sorted(re.findall(r"^\s+WARN\s+\S+:(\S+)$", out, flags=re.M)) == warned_names
    assert "FAIL " not in out

    assert_mock_api_stopped(out)


def test_a_failing_blocking_check_makes_the_command_exit_1_and_names_the_check(data_dir, tmp_path):
    home = tmp_path / "dagster_home"
    env = cli_env(data_dir, home)
    first = run_with_mock_api(env)
    assert first.returncode == 0, first.stdout + first.stderr

    store = CsvTables(data_dir)
    territories = store.read("territory_dim")
    assert (territories["territory_id"] == "MID_INS").sum() == 1
    territories.loc[territories["territory_id"] == "MID_INS", "territory_id"] = "mid-ins"
    store.write("territory_dim", territories)

    proc = run_with_mock_api(env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"crm-territory run [0-9a-f]{8} \(materialize_all_job\): FAILED in", out), out
    m = re.search(r"^\s+checks\s+(\d+) passed, (\d+) warned, (\d+) failed$", out, flags=re.M)
    assert m and int(m[3]) >= 1, out
    fails = re.findall(r"^\s+FAIL\s+(\S+)$", out, flags=re.M)
    assert "territory_dim:territory_dim_matches_schema" in fails
    assert len(fails) == int(m[3])
    assert_mock_api_stopped(out)

    with instance_at(home) as instance:
        runs = instance.get_runs()  # newest first
        assert [(r.job_name, r.status) for r in runs] == [
            ("materialize_all_job", dg.DagsterRunStatus.FAILURE),
            ("materialize_all_job", dg.DagsterRunStatus.SUCCESS),
        ]
        checks = check_results(instance, runs[0].run_id)
    assert checks["territory_dim_matches_schema"] == (False, dg.AssetCheckSeverity.ERROR)


def test_without_the_mock_api_and_without_a_token_the_command_exits_2_naming_the_variable(data_dir, tmp_path):
    home = tmp_path / "dagster_home"
    proc = run_cli(cli_env(data_dir, home))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "CRM_API_TOKEN" in proc.stderr
    assert "--start-mock-api" in proc.stderr
    assert "mock CRM API" not in proc.stdout  # nothing was started
    # nothing ran: no table written, no run recorded
    assert not (data_dir / "core").exists() and not (data_dir / "raw").exists()
    with instance_at(home) as instance:
        assert instance.get_runs() == []


def test_a_rejected_file_is_named_in_the_summary_and_the_run_is_not_all_green(data_dir, tmp_path):
    (data_dir / "landing" / "export.xlsx.csv").write_bytes(b"PK\x03\x04\x00\x14\x00binary")
    proc = run_with_mock_api(cli_env(data_dir, tmp_path / "dagster_home"))
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a WARN is not a failure: the other drops loaded
    out = proc.stdout
    assert re.search(r"\): SUCCESS with \d+ warnings? in", out), out
    assert re.fullmatch(r"\s+rejected files\s+1 \(export\.xlsx\.csv\)", summary_line(out, "rejected files"))
    assert re.search(r"^\s+WARN\s+ingest_manifest:landing_files_accepted$", out, flags=re.M), out


def test_a_killed_make_run_leaves_no_mock_api_behind(data_dir, tmp_path):
    """The probe: SIGKILL of `make run` left the mock CRM running as an orphan (no finally runs on SIGKILL)."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_territory.cli", "run", "--start-mock-api", "--mock-api-clients", str(API_CLIENTS)],
        cwd=REPO_ROOT,
        env=cli_env(data_dir, tmp_path / "dagster_home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = None
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the API is up, then kill the run without warning
        started = re.search(r"mock CRM API started on http://127\.0\.0\.1:(\d+) \(pid (\d+)\)", line)
        if started or time.monotonic() > deadline:
            break
    assert started, "the mock API never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    port, pid = int(started[1]), int(started[2])
    gone_by = time.monotonic() + 15
    while (
        time.monotonic() < gone_by and Path(f"/proc/{pid}").exists() and b"mock_api" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ):
        time.sleep(0.2)
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert not (cmdline.exists() and b"mock_api" in cmdline.read_bytes()), f"mock API pid {pid} outlived the killed run"
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on port {port}"


def test_a_second_run_on_a_data_folder_in_use_waits_then_refuses_naming_the_holder(data_dir, tmp_path):
    """The probe: two `cli run`s on one folder neither waited nor refused; one pull was silently thrown away."""
    from crm_territory.storage.writer_lock import DataFolderLock

    holder = DataFolderLock(data_dir)
    holder.acquire("feedbeef-a-run-in-progress")
    try:
        proc = run_with_mock_api({**cli_env(data_dir, tmp_path / "dagster_home"), "CRM_LOCK_WAIT_SECONDS": "1"})
    finally:
        holder.release()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"run stopped before any step: The data folder .* is in use by run feedbeef \(pid \d+", proc.stdout), (
        proc.stdout
    )
    assert not (data_dir / "core").exists()  # it wrote nothing
