"""The production deployment files in infra/: their structure, and the instance against a real PostgreSQL.

Static tests read infra/dagster.yaml and infra/helm/values.yaml (and validate the instance file with Dagster's own
config schema). The integration test starts a PostgreSQL server (crm_territory_tests/postgres_server.py), loads the
instance from infra/dagster.yaml exactly as a deployment would (DAGSTER_HOME + DAGSTER_PG_* variables), runs every
asset and check through it, and reads the run, the materializations and the check results back from Postgres --
through a fresh DagsterInstance and with plain SQL.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from crm_territory.definitions import build_definitions
from crm_territory.instance.run_launcher import MonitoredRunLauncher
from crm_territory.settings import Settings
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, run_mock_api
from crm_territory_tests.support.postgres_server import run_postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO_ROOT / "infra" / "dagster.yaml"
HELM_VALUES = REPO_ROOT / "infra" / "helm" / "values.yaml"

PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
PG_FIELDS = {
    "hostname": "DAGSTER_PG_HOST",
    "port": "DAGSTER_PG_PORT",
    "username": "DAGSTER_PG_USERNAME",
    "password": "DAGSTER_PG_PASSWORD",
    "db_name": "DAGSTER_PG_DB",
}
# Keys whose value would be a credential if it were written literally.
SECRET_KEY = re.compile(r"password|passphrase|token|private_?key|api_?key|secret_?key", re.IGNORECASE)
# Variables that must reach the code only from a Kubernetes secret.
SECRET_ENV = re.compile(r"^(CRM_API_TOKEN|SNOWFLAKE_.*)$")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def leaves(node, path=()):
    """(path, value) for every scalar in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, str(i)))
    else:
        yield path, node


def literal_secrets(doc) -> list[str]:
    """Paths whose last key names a credential and whose value is a non-empty literal string.

    (Flags such as generatePostgresqlPasswordSecret: false and names of Kubernetes secrets are not credentials.)
    """
    found = []
    for path, value in leaves(doc):
        key = path[-1] if path else ""
        if SECRET_KEY.search(key) and isinstance(value, str) and value and not key.endswith("SecretName"):
            found.append("/".join(path))
    return found


@pytest.fixture
def instance_env(monkeypatch, tmp_path):
    """Placeholder values for every variable infra/dagster.yaml reads (no server behind them)."""
    for name in PG_VARS:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else f"placeholder-{name.lower()}")
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_DIR", str(tmp_path / "compute_logs"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home


# --- infra/dagster.yaml -------------------------------------------------------------------------------------------


def test_dagster_yaml_uses_postgres_with_credentials_from_the_environment():
    config = load_yaml(DAGSTER_YAML)
    assert set(config["storage"]) == {"postgres"}, "one postgres block serves runs, event logs and schedules"
    assert not {"run_storage", "event_log_storage", "schedule_storage"} & set(config), "no per-storage overrides"
    db = config["storage"]["postgres"]["postgres_db"]
    assert {field: db.get(field) for field in PG_FIELDS} == {field: {"env": var} for field, var in PG_FIELDS.items()}
    assert "postgres_url" not in config["storage"]["postgres"]
    assert literal_secrets(config) == []


def test_dagster_yaml_queues_runs_launches_locally_with_monitoring_and_turns_telemetry_off():
    config = load_yaml(DAGSTER_YAML)
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    assert "config" not in coordinator, "limits live under concurrency (Dagster refuses them in both places)"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] > 1
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "run"}, "the tables are protected by a pool"
    assert config["run_launcher"] == {"module": "crm_territory.instance.run_launcher", "class": "MonitoredRunLauncher"}
    assert config["compute_logs"]["class"] == "LocalComputeLogManager"
    assert config["compute_logs"]["config"]["base_dir"] == {"env": "DAGSTER_COMPUTE_LOG_DIR"}
    assert config["telemetry"] == {"enabled": False}


def test_dagster_yaml_is_a_valid_instance_config(instance_env):
    """Dagster's own schema accepts the file and builds every configurable class that needs no database."""
    ref = InstanceRef.from_dir(str(instance_env))
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    assert type(ref.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert type(ref.run_launcher) is MonitoredRunLauncher
    assert isinstance(ref.compute_log_manager, LocalComputeLogManager)
    assert ref.settings["telemetry"] == {"enabled": False}
    assert ref.settings["concurrency"]["runs"]["max_concurrent_runs"] == 4  # schema-checked by InstanceRef above


def test_dagster_yaml_fails_runs_whose_process_is_gone(instance_env):
    """Run monitoring on, with a launcher that can answer it, polling often enough for the queue to move on."""
    ref = InstanceRef.from_dir(str(instance_env))  # Dagster's schema accepts every run_monitoring key
    monitoring = ref.settings["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["poll_interval_seconds"] <= 60, "a dead run frees the pool within a minute or two"
    assert monitoring["max_resume_run_attempts"] == 0, "the launcher does not resume runs (Dagster refuses otherwise)"
    assert ref.run_launcher is not None and ref.run_launcher.supports_check_run_worker_health


def test_every_asset_that_writes_a_table_is_in_the_one_pool_the_instance_limits(instance_env):
    """Two runs never write the tables at once: each table-writing asset takes a slot of the same pool, limit 1."""
    from crm_territory.definitions import build_definitions
    from crm_territory.settings import Settings
    from crm_territory.wiring.assets import TABLES_POOL

    ref = InstanceRef.from_dir(str(instance_env))
    assert ref.settings["concurrency"]["pools"] == {"default_limit": 1, "granularity": "run"}
    defs = build_definitions(Settings(data_dir=instance_env, storage="local", api_url="http://127.0.0.1:9"))
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert all(found == {TABLES_POOL} for found in pools.values()), pools
    activation = defs.resolve_job_def("activate_rules_job")
    assert {node.definition.pool for node in activation.graph.nodes} == {None}, "activation writes no table: never held up"


# --- infra/helm/values.yaml ---------------------------------------------------------------------------------------


def test_helm_values_run_the_code_location_with_k8s_jobs_and_secrets_from_kubernetes():
    values = load_yaml(HELM_VALUES)

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    job_resources = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert {"requests", "limits"} <= set(job_resources) and job_resources["limits"]["memory"]

    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] is True
    (deployment,) = user_code["deployments"]
    args = deployment.get("codeServerArgs") or deployment.get("dagsterApiGrpcArgs")
    assert args == ["--module-name", "crm_territory.definitions"]
    assert not ("codeServerArgs" in deployment and "dagsterApiGrpcArgs" in deployment), "the chart takes one of them"
    assert deployment["port"] == 3030
    assert {"repository", "tag"} <= set(deployment["image"])
    env = {item["name"]: item for item in deployment["env"]}
    assert env["CRM_STORAGE"]["value"] == "snowflake"
    assert [s["name"] for s in deployment["envSecrets"]], "CRM_API_TOKEN and SNOWFLAKE_* come from a secret"
    assert not [name for name in env if SECRET_ENV.match(name)], "credentials belong in envSecrets, not env"
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}, "run Jobs need the same env and secrets"

    # External Postgres, password from an existing secret (never generated from a value in this file).
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]

    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert values["telemetry"] == {"enabled": False}
    assert literal_secrets(values) == []


def test_helm_values_fail_runs_whose_job_is_gone_as_the_single_host_instance_does():
    helm = load_yaml(HELM_VALUES)["dagsterDaemon"]["runMonitoring"]
    single_host = load_yaml(DAGSTER_YAML)["run_monitoring"]
    assert helm["enabled"] is True and single_host["enabled"] is True
    assert helm["pollIntervalSeconds"] == single_host["poll_interval_seconds"]
    assert helm["maxResumeRunAttempts"] == single_host["max_resume_run_attempts"] == 0


def test_helm_and_single_host_instance_apply_the_same_queue_limits():
    helm = load_yaml(HELM_VALUES)["concurrency"]
    assert helm["runs"]["maxConcurrentRuns"] == load_yaml(DAGSTER_YAML)["concurrency"]["runs"]["max_concurrent_runs"]
    pools = helm["pools"]
    assert (
        (pools["defaultLimit"], pools["granularity"])
        == (1, "run")
        == tuple(load_yaml(DAGSTER_YAML)["concurrency"]["pools"].values())
    )


def test_helm_and_single_host_instance_name_the_installed_postgres_driver():
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not install.
    single_host = load_yaml(DAGSTER_YAML)["storage"]["postgres"]["postgres_db"]["scheme"]
    assert single_host == load_yaml(HELM_VALUES)["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


# --- the instance on a real PostgreSQL ----------------------------------------------------------------------------


def _failure_report(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            lines.append(f"{event.step_key}: {event.step_failure_data.error.message.strip()}")
    failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    return "; ".join(lines) + f" (checks not passed: {failed_checks})"


@pytest.mark.integration
def test_instance_on_real_postgres_records_run_materializations_and_checks(tmp_path, monkeypatch, data_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_DIR", str(tmp_path / "compute_logs"))
    monkeypatch.setenv("CRM_STORAGE", "local")
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)

    with run_postgres() as pg:
        for name, value in pg.dagster_env().items():
            monkeypatch.setenv(name, value)

        with run_mock_api(clients=200) as api_url:
            monkeypatch.setenv("CRM_API_URL", api_url)
            defs = build_definitions(Settings.from_env())
            asset_graph = defs.get_repository_def().asset_graph
            check_keys = set(asset_graph.asset_check_keys)
            blocking = {key for key in check_keys if asset_graph.get(key).blocking}

            with dg.DagsterInstance.get() as instance:
                assert isinstance(instance.run_storage, PostgresRunStorage)
                assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
                assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
                assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
                assert type(instance.run_launcher) is MonitoredRunLauncher
                assert instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health

                result = defs.resolve_job_def("materialize_all_job").execute_in_process(
                    instance=instance, raise_on_error=False, run_config=QUIET
                )
                assert result.success, _failure_report(result)

        run_id = result.run_id
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        assert {dg.AssetKey(k) for k in ("client_dim", "territory_dim", "assignments_fact")} <= materialized
        evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == check_keys, "every check ran"
        assert all(evaluations[key].passed for key in blocking), "no blocking check failed"

        # Read everything back through a new instance built from the same file: nothing comes from memory.
        with dg.DagsterInstance.from_config(str(home)) as fresh:
            assert isinstance(fresh.run_storage, PostgresRunStorage)
            run = fresh.get_run_by_id(run_id)
            assert run is not None and run.job_name == "materialize_all_job"
            assert run.status == dg.DagsterRunStatus.SUCCESS

            for key in materialized:
                event = fresh.get_latest_materialization_event(key)
                assert event is not None and event.run_id == run_id, key
            client_dim = fresh.get_latest_materialization_event(dg.AssetKey("client_dim")).asset_materialization
            rows_on_disk = len(pd.read_csv(data_dir / "core" / "client_dim.csv", dtype=str))
            assert client_dim.metadata["dagster/row_count"].value == rows_on_disk > 0

            latest = fresh.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys))
            assert set(latest) == check_keys
            for key, record in latest.items():
                assert record.run_id == run_id, key
                expected = (
                    AssetCheckExecutionRecordStatus.SUCCEEDED
                    if evaluations[key].passed
                    else AssetCheckExecutionRecordStatus.FAILED
                )
                assert record.status == expected, key
                assert record.evaluation.passed == evaluations[key].passed, key

            schema_check = dg.AssetCheckKey(dg.AssetKey("assignments_fact"), "assignments_fact_matches_schema")
            (execution,) = fresh.event_log_storage.get_asset_check_execution_history(schema_check, limit=10)
            assert execution.status == AssetCheckExecutionRecordStatus.SUCCEEDED
            assert execution.evaluation.passed and execution.evaluation.metadata["failing_values"].value == 0

        # And with plain SQL on the Dagster tables, over a new connection as the instance's database user.
        with psycopg2.connect(pg.dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT pipeline_name, status FROM runs WHERE run_id = %s", (run_id,))
            assert cur.fetchall() == [("materialize_all_job", "SUCCESS")]
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (run_id,),
            )
            assert cur.fetchone()[0] == len(result.get_asset_materialization_events())
            cur.execute("SELECT check_name, execution_status FROM asset_check_executions WHERE run_id = %s", (run_id,))
            stored = dict(cur.fetchall())
            assert stored == {key.name: "SUCCEEDED" if evaluations[key].passed else "FAILED" for key in check_keys}
            assert stored["assignments_fact_matches_schema"] == "SUCCEEDED"
        conn.close()
