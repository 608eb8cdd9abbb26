"""The analytics app on CRM_STORAGE=snowflake: its tables read through storage.snowflake (the real connector and
dagster-snowflake, on fakesnow), giving every page the same figures as the same book published as CSV files."""

import os
import shutil

import pandas as pd
import pytest
import snowflake.connector
import streamlit as st
from streamlit.testing.v1 import AppTest

from crm_territory.app import page_data
from crm_territory.app.data import CsvSource, SnowflakeSource, source_from_environment
from crm_territory.schemas import TABLES
from crm_territory.storage.csv_set import CsvTableSet
from crm_territory.storage.snowflake import publish_tables, stage_table
from crm_territory.storage.warehouse_ddl import apply_ddl
from crm_territory_tests.support import REPO_ROOT, utc
from crm_territory_tests.support.snowflake_fake import FAKE_ENV, fake_snowflake
from crm_territory_tests.unit.test_analytics import (
    ADVISORS,
    ASSIGNMENT_HISTORY,
    CLIENT_HISTORY,
    CLIENTS,
    FACT,
    TERRITORIES,
)

pytestmark = pytest.mark.integration

DATABASE = FAKE_ENV["SNOWFLAKE_DATABASE"]
BOOK = {
    "client_dim": CLIENTS,
    "territory_dim": TERRITORIES,
    "advisor_dim": ADVISORS,
    "assignments_fact": FACT,
    "client_dim_history": CLIENT_HISTORY,
    "assignments_fact_history": ASSIGNMENT_HISTORY,
}


def connect():
    return snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})


def publish_in_snowflake(run_id: str, tables: dict[str, pd.DataFrame]) -> None:
    """What the Snowflake IO manager does at the end of a run: stage each table, then one transaction."""
    connection = connect()
    staged = {name: stage_table(connection, DATABASE, TABLES[name], frame, run_id) for name, frame in tables.items()}
    publish_tables(connection, DATABASE, staged)
    connection.close()


@pytest.fixture
def warehouse(monkeypatch):
    for name in [n for n in os.environ if n.startswith(("SNOWFLAKE_", "CRM_"))]:
        monkeypatch.delenv(name)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRM_STORAGE", "snowflake")
    with fake_snowflake():
        connection = connect()
        for schema in ("RAW", "CORE"):  # what Terraform creates (infra/terraform/database.tf)
            connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{schema}")
        apply_ddl(connection)
        connection.close()
        publish_in_snowflake("11111111-run", BOOK)
        st.cache_resource.clear()
        st.cache_data.clear()
        yield


@pytest.fixture
def csv_book(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(REPO_ROOT / "data" / "reference", data_dir / "reference")
    store = CsvTableSet(data_dir)
    for name, frame in BOOK.items():
        store.stage("run-one", name, frame)
    store.publish("run-one")
    return CsvSource(data_dir)


def test_the_app_reads_the_snowflake_tables_with_the_models_dtypes(warehouse):
    source = source_from_environment()
    assert isinstance(source, SnowflakeSource)
    for name, frame in BOOK.items():
        pd.testing.assert_frame_equal(source.read(name), frame.reset_index(drop=True), obj=name)
    assert source.read("client_matches").empty  # created by the DDL, never written


def test_every_page_gives_the_same_figures_from_snowflake_as_from_csv(warehouse, csv_book):
    snowflake_source = source_from_environment()

    def reader(source):
        return source.read

    for page in ("overview_page", "territories_page", "advisors_page", "families_page", "quality_page"):
        ours, csv = getattr(page_data, page)(reader(snowflake_source)), getattr(page_data, page)(reader(csv_book))
        if isinstance(ours, pd.DataFrame):
            pd.testing.assert_frame_equal(ours, csv, obj=page)
            continue
        for key, value in ours.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(value, csv[key], obj=f"{page}.{key}")
            else:
                assert value == csv[key], (page, key)
    when = utc("2026-03-15")
    for key in ("owner", "map"):
        pd.testing.assert_frame_equal(
            page_data.history_page(reader(snowflake_source), "k:2", when)[key],
            page_data.history_page(reader(csv_book), "k:2", when)[key],
            obj=key,
        )
    assert page_data.territories_page(reader(snowflake_source)).set_index("Territory").loc["NOR_RET", "Clients"] == 2


def test_a_new_publish_in_snowflake_changes_the_version_and_the_page(warehouse):
    at = AppTest.from_file(str(REPO_ROOT / "crm_territory" / "app" / "main.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Clients"] == "5"
    assert "Snowflake database CRM_TERRITORY" in at.caption[-1].value
    before = source_from_environment().version()
    later = utc("2026-05-01")
    publish_in_snowflake(
        "22222222-run",
        {
            "client_dim": CLIENTS.iloc[:3],
            "assignments_fact_history": pd.concat([ASSIGNMENT_HISTORY, ASSIGNMENT_HISTORY.iloc[:1].assign(valid_from=later)]),
        },
    )
    assert source_from_environment().version() != before
    at.run()
    assert {m.label: m.value for m in at.metric}["Clients"] == "3"


def test_a_role_that_cannot_read_raw_still_gets_the_core_figures(warehouse):
    """The analyst role reads CORE only (infra/terraform/grants_analyst.tf): RAW's tables are not visible to it."""
    connection = connect()
    connection.cursor().execute(f"DROP TABLE {DATABASE}.RAW.QUARANTINED_CLIENTS")
    connection.close()
    at = AppTest.from_file(str(REPO_ROOT / "crm_territory" / "app" / "main.py"), default_timeout=60)
    at.switch_page("views/quality.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "cannot read quarantined_clients" in at.warning[0].value
    assert {m.label: m.value for m in at.metric}["Unknown spellings"] == "2"  # from CORE.CLIENT_DIM
    connection = connect()
    connection.cursor().execute(f"DROP TABLE {DATABASE}.CORE.CLIENT_DIM")
    connection.close()
    with pytest.raises(Exception, match="CLIENT_DIM"):  # a CORE table is never silently empty
        source_from_environment().read("client_dim")


def test_inside_streamlit_in_snowflake_the_app_reads_through_its_own_session(warehouse, monkeypatch):
    """Streamlit in Snowflake has no environment to read: the app takes Snowpark's active session (here a stand-in
    whose connection is the fake warehouse's, with the SNOWFLAKE_* variables and CRM_STORAGE unset)."""
    import sys
    import types

    for name in [n for n in os.environ if n.startswith(("SNOWFLAKE_", "CRM_"))]:
        monkeypatch.delenv(name)
    connection = connect()

    class Session:
        def __init__(self):
            self.connection = connection

        def get_current_database(self):
            return f'"{DATABASE}"'

    context = types.ModuleType("snowflake.snowpark.context")
    context.get_active_session = Session  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snowflake.snowpark", types.ModuleType("snowflake.snowpark"))
    monkeypatch.setitem(sys.modules, "snowflake.snowpark.context", context)
    source = source_from_environment()
    assert isinstance(source, SnowflakeSource)
    pd.testing.assert_frame_equal(source.read("assignments_fact"), FACT.reset_index(drop=True))
    assert source.read("client_dim")["client_key"].tolist() == CLIENTS["client_key"].tolist()  # the session stays open
    connection.close()
