"""CRM_STORAGE=snowflake: the same assets through the real connector and dagster-snowflake, on fakesnow."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
import snowflake.connector
from dagster._core.instance.ref import InstanceRef

from crm_territory.definitions import build_definitions
from crm_territory.schemas import JOURNAL_TABLES, TABLES, WAREHOUSE_TABLES, conform
from crm_territory.settings import Settings, SettingsError
from crm_territory.storage.csv_tables import CsvTables
from crm_territory.storage.warehouse_ddl import apply_ddl
from crm_territory_tests.support import QUIET, error_text, materialized
from crm_territory_tests.support.compare_tables import comparable as comparable_rows
from crm_territory_tests.support.snowflake_fake import FAKE_ENV, deployed_warehouse, fake_snowflake

pytestmark = pytest.mark.integration


MOCK_API_BOOK = {"clients": 400, "seed": 5}


@pytest.fixture
def env(monkeypatch, pipeline_env):
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def warehouse(env):
    """fakesnow with the deployment's set-up: the schemas Terraform creates, then the DDL."""
    with deployed_warehouse() as connection:
        yield connection


@pytest.fixture
def disk_instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    """A real instance on disk shared by the test's runs, as ``make run`` shares .dagster_home."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def run_all(storage: str, monkeypatch, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    monkeypatch.setenv("CRM_STORAGE", storage)
    defs = build_definitions(Settings.from_env())
    return defs.resolve_job_def("materialize_all_job").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET
    )


def read_table(connection, table: str) -> pd.DataFrame:
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM CRM_TERRITORY.{TABLES[table].warehouse_name}")
    frame = pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    return conform(frame, TABLES[table].model)


def comparable(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Run-time stamps dropped, rows sorted (row order is not a table property); ``table`` names it in failures."""
    return comparable_rows(frame)


def test_ddl_creates_every_table_of_the_models(warehouse):
    cursor = warehouse.cursor()
    for spec in TABLES.values():
        cursor.execute(f"DESCRIBE TABLE CRM_TERRITORY.{spec.warehouse_name}")
        columns = [row[0].lower() for row in cursor.fetchall()]
        assert columns == list(spec.model.to_schema().columns), spec.warehouse_name
    apply_ddl(warehouse)  # idempotent: applying again changes nothing and does not fail


def test_snowflake_run_writes_the_same_tables_as_the_csv_run(warehouse, env, data_dir):
    snowflake_run = run_all("snowflake", env)
    assert snowflake_run.success
    failed = [
        e.check_name
        for e in snowflake_run.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == []
    all_checks = build_definitions(Settings.from_env()).get_repository_def().asset_graph.asset_check_keys
    assert {e.check_name for e in snowflake_run.get_asset_check_evaluations()} == {k.name for k in all_checks}

    csv_run = run_all("local", env)
    assert csv_run.success
    csv = CsvTables(data_dir)
    for table in TABLES:
        from_snowflake = read_table(warehouse, table)
        # no candidate rules: no preview; one run: no key retired yet
        assert len(from_snowflake) > 0 or table in (
            "quarantined_clients",
            "assignments_preview",
            "client_key_retirements",
            "match_model",
        ), table
        pd.testing.assert_frame_equal(comparable(from_snowflake, table), comparable(csv.read(table), table), obj=table)


def test_rerunning_on_snowflake_gives_the_same_tables_and_no_duplicates(warehouse, env):
    assert run_all("snowflake", env).success
    first = {t: read_table(warehouse, t) for t in TABLES}
    assert run_all("snowflake", env).success
    for table, before in first.items():
        after = read_table(warehouse, table)
        assert len(after) == len(before), table
        pd.testing.assert_frame_equal(comparable(after, table), comparable(before, table), obj=table)
    territories = read_table(warehouse, "territory_dim")
    assert territories["territory_id"].is_unique


def staging_tables(warehouse) -> list[str]:
    cursor = warehouse.cursor()
    return [
        f"{schema}.{row[1]}"
        for schema in ("RAW", "CORE")
        for row in cursor.execute(f"SHOW TABLES IN SCHEMA CRM_TERRITORY.{schema}").fetchall()
        if "__RUN_" in row[1]
    ]


def fail_loading_the_fact(env):
    """From now on, loading assignments_fact into Snowflake fails as a dropped connection would; returns the real load."""
    import snowflake.connector.pandas_tools as pandas_tools

    load = pandas_tools.write_pandas  # fakesnow's, patched in by the fixture

    def fail_for_the_fact(conn, df, table_name, **kwargs):
        if table_name.startswith("ASSIGNMENTS_FACT"):
            raise RuntimeError("connection reset while loading")
        return load(conn, df, table_name, **kwargs)

    env.setattr(pandas_tools, "write_pandas", fail_for_the_fact)
    return load


def test_a_run_whose_write_fails_publishes_none_of_its_tables(warehouse, env, data_dir):

    assert run_all("snowflake", env).success
    before = {t: read_table(warehouse, t) for t in ("raw_clients", "client_dim", "assignments_fact")}
    # a new drop changes raw_clients and client_dim; then the fact's load fails
    (data_dir / "landing" / "2026-12-06_more.csv").write_text(
        "client_id,client_name,region,segment,parent_org,advisor_email\n901,Quillon Harbour Advisors,Northeast,Retail,,\n"
    )
    fail_loading_the_fact(env)
    result = run_all("snowflake", env)
    assert not result.success
    assert next(e for e in result.all_events if e.is_step_failure).step_key == "assignments_fact"
    assert {"raw_clients", "client_dim"} <= materialized(result)  # staged in this run ...
    for table, rows in before.items():  # ... and, like the fact, never published: every table as it was
        after = read_table(warehouse, table)
        assert len(after) == len(rows) > 0, table
        pd.testing.assert_frame_equal(comparable(after, table), comparable(rows, table), obj=table)
    assert staging_tables(warehouse) == []  # the failed run dropped what it staged


def test_staging_tables_a_dead_run_left_are_dropped_by_the_next_run_which_says_so(warehouse, env):
    assert run_all("snowflake", env).success
    rows = len(read_table(warehouse, "client_dim"))
    # what a run killed between staging and publishing leaves: its staged copy, never published
    warehouse.cursor().execute(
        "CREATE TABLE CRM_TERRITORY.CORE.CLIENT_DIM__RUN_DEADBEEF AS SELECT * FROM CRM_TERRITORY.CORE.CLIENT_DIM LIMIT 3"
    )
    assert staging_tables(warehouse) == ["CORE.CLIENT_DIM__RUN_DEADBEEF"]
    instance = dg.DagsterInstance.ephemeral()
    result = run_all("snowflake", env, instance)
    assert result.success
    assert staging_tables(warehouse) == []
    assert len(read_table(warehouse, "client_dim")) == rows
    said = [e.user_message for e in instance.all_logs(result.run_id) if "CLIENT_DIM__RUN_DEADBEEF" in e.user_message]
    assert len(said) == 1 and "none of their rows was ever visible" in said[0]


def test_a_write_to_a_table_the_ddl_did_not_create_fails_naming_the_fix(warehouse, env):
    warehouse.cursor().execute("DROP TABLE CRM_TERRITORY.CORE.TERRITORY_DIM")
    result = run_all("snowflake", env)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "territory_dim"
    assert "CRM_TERRITORY.CORE.TERRITORY_DIM does not exist" in error_text(failure) and "apply-ddl" in error_text(failure)


def test_territory_ids_are_read_back_from_snowflake_and_kept(warehouse, env):
    assert run_all("snowflake", env).success
    cursor = warehouse.cursor()
    # a territory issued earlier with a suffix must survive the next run unchanged
    cursor.execute("UPDATE CRM_TERRITORY.CORE.TERRITORY_DIM SET TERRITORY_ID = 'WES_RET_7' WHERE TERRITORY_ID = 'WES_RET'")
    assert run_all("snowflake", env).success
    territories = read_table(warehouse, "territory_dim").set_index("territory_id")
    assert territories.loc["WES_RET_7", "region"] == "West" and "WES_RET" not in territories.index
    fact = read_table(warehouse, "assignments_fact")
    assert "WES_RET_7" in set(fact["territory_id"])


def test_a_missing_credential_fails_at_definitions_load_naming_the_variable(env):
    env.setenv("CRM_STORAGE", "snowflake")
    env.delenv("SNOWFLAKE_PASSWORD")
    env.delenv("SNOWFLAKE_WAREHOUSE")
    with pytest.raises(
        SettingsError, match="SNOWFLAKE_WAREHOUSE, SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY or SNOWFLAKE_PASSWORD"
    ):
        Settings.from_env()


def test_a_wrong_password_fails_the_run_with_the_connectors_error_and_writes_nothing(env):
    from crm_territory_tests.support.snowflake_fake import refusing_login_endpoint

    env.setenv("SNOWFLAKE_PASSWORD", "wrong-password-123")
    with refusing_login_endpoint() as endpoint:
        for name, value in endpoint.items():
            env.setenv(name, value)
        result = run_all("snowflake", env)
    assert not result.success
    # the IO manager connects when the run's resources start (to clear what a dead run left staged), so the run
    # stops before any step, with the connector's words and without the password
    init_failures = [e for e in result.all_events if e.is_resource_init_failure]
    assert init_failures and not [e for e in result.all_events if e.is_step_start]
    for failure in init_failures:
        text = str(failure.event_specific_data.error.to_string())
        assert "Incorrect username or password was specified" in text
        assert "wrong-password-123" not in text
    assert materialized(result) == set()


def test_apply_ddl_command_creates_the_tables_from_the_environment(env):
    from crm_territory.cli import main

    with fake_snowflake():
        connection = snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})
        for schema in ("RAW", "CORE"):
            connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.{schema}")
        assert main(["apply-ddl"]) == 0
        tables = {
            row[1]
            for schema in ("RAW", "CORE")
            for row in connection.cursor().execute(f"SHOW TABLES IN SCHEMA CRM_TERRITORY.{schema}").fetchall()
        }
    assert tables == {spec.warehouse_table for spec in [*TABLES.values(), *WAREHOUSE_TABLES.values(), *JOURNAL_TABLES.values()]}


def test_apply_ddl_without_credentials_exits_2_naming_them(env, capsys):
    from crm_territory.cli import main

    env.delenv("SNOWFLAKE_ACCOUNT")
    assert main(["apply-ddl"]) == 2
    assert "SNOWFLAKE_ACCOUNT" in capsys.readouterr().err


def test_an_older_client_dim_is_upgraded_by_the_ddl_and_reads_back(env, tmp_path):
    """A CORE.CLIENT_DIM created before entity resolution (no SOURCE_RECORD_COUNT, rows in it): applying the DDL adds
    the column with the value old rows hold, and the table store reads the old rows with it."""
    from crm_territory.storage.snowflake import SnowflakeTableStore, snowflake_storage_resources

    with fake_snowflake():
        connection = snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})
        cursor = connection.cursor()
        for schema in ("RAW", "CORE"):
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.{schema}")
        columns = [c for c in TABLES["client_dim"].model.to_schema().columns if c != "source_record_count"]
        types = {"is_active": "BOOLEAN", "aum_usd": "FLOAT", "source_modified_at": "TIMESTAMP_TZ"}
        definitions = ", ".join(f"{c.upper()} {types.get(c, 'VARCHAR')}" for c in columns)
        cursor.execute(f"CREATE TABLE CRM_TERRITORY.CORE.CLIENT_DIM ({definitions})")
        cursor.execute(
            "INSERT INTO CRM_TERRITORY.CORE.CLIENT_DIM (CLIENT_KEY, CLIENT_NAME, IS_ACTIVE, SOURCE_SYSTEM, SOURCE_RECORD_ID, SOURCE_MODIFIED_AT) "
            "VALUES ('csv_drop:1', 'Atlas Capital Partners', TRUE, 'csv_drop', '1', '2026-11-01 00:00:00+00:00')"
        )
        apply_ddl(connection)
        cursor.execute("SELECT CLIENT_KEY, SOURCE_RECORD_COUNT FROM CRM_TERRITORY.CORE.CLIENT_DIM")
        assert cursor.fetchall() == [("csv_drop:1", 1)]
        store = snowflake_storage_resources(str(tmp_path))["table_store"]
        assert isinstance(store, SnowflakeTableStore)
        with dg.build_resources({"table_store": store}) as resources:
            previous = resources.table_store.read_previous("client_dim")
        assert previous["client_key"].tolist() == ["csv_drop:1"] and previous["source_record_count"].tolist() == [1]
        connection.close()


# --- the registry and history guards know which database they guard ---------------------------------------


def fresh_database(name: str):
    """Another database on the same account, set up as the deployment does (schemas, then the DDL)."""
    settings = {k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()}
    connection = snowflake.connector.connect(**{**settings, "database": name})
    for schema in ("RAW", "CORE"):
        connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {name}.{schema}")
    apply_ddl(connection)
    return connection


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key or "": error_text(e) for e in result.all_events if e.is_step_failure}


def territory_dim_materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    return next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("territory_dim")
    )


def test_a_fresh_database_on_an_instance_that_ran_on_another_starts_cleanly(warehouse, env, disk_instance):
    own = run_all("snowflake", env, disk_instance)
    assert own.success
    other = fresh_database("CRM_TERRITORY_TEST")
    env.setenv("SNOWFLAKE_DATABASE", "CRM_TERRITORY_TEST")
    result = run_all("snowflake", env, disk_instance)
    assert step_failures(result) == {}
    assert result.success
    assert len(read_table(other, "territory_dim").index) > 0 and len(read_table(other, "client_dim_history").index) > 0
    # where each table went: account, database and schema; no user, no password
    recorded = {
        e.materialization.asset_key.to_user_string(): str(e.materialization.metadata["crm/storage_location"].value)
        for e in result.get_asset_materialization_events()
    }
    assert recorded["territory_dim"] == "snowflake:crm-test-account/CRM_TERRITORY_TEST.CORE"
    assert recorded["raw_clients"] == "snowflake:crm-test-account/CRM_TERRITORY_TEST.RAW"
    assert not [v for v in recorded.values() if FAKE_ENV["SNOWFLAKE_PASSWORD"] in v or FAKE_ENV["SNOWFLAKE_USER"] in v]
    other.close()

    # back on the first database, its registry and client history emptied: refused, naming the run that wrote *it*
    env.setenv("SNOWFLAKE_DATABASE", "CRM_TERRITORY")
    warehouse.cursor().execute("DELETE FROM CRM_TERRITORY.CORE.TERRITORY_DIM")
    warehouse.cursor().execute("DELETE FROM CRM_TERRITORY.CORE.CLIENT_DIM_HISTORY")
    said = step_failures(run_all("snowflake", env, disk_instance))
    rows = territory_dim_materialization(own).metadata["dagster/row_count"].value
    assert f"run {own.run_id[:8]} published {rows} rows" in said["territory_dim"]
    assert "reissue_territory_ids" in said["territory_dim"]
    assert f"run {own.run_id[:8]} published" in said["client_dim_history"]


def test_a_run_that_failed_before_publishing_does_not_make_the_next_run_refuse(warehouse, env, disk_instance):
    import snowflake.connector.pandas_tools as pandas_tools

    load = fail_loading_the_fact(env)
    failed = run_all("snowflake", env, disk_instance)
    assert not failed.success
    assert "territory_dim" in materialized(failed)  # Dagster recorded it, with its rows ...
    assert read_table(warehouse, "territory_dim").empty  # ... the run published none of it
    env.setattr(pandas_tools, "write_pandas", load)  # the connection is back
    result = run_all("snowflake", env, disk_instance)
    assert step_failures(result) == {}
    assert result.success
