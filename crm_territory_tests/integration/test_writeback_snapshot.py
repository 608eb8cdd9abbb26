"""The CRM API snapshot's write-back fields in Snowflake: a RAW.CRM_API_CLIENTS created before them is upgraded by the
DDL and still reads back (the CSV side: crm_territory_tests/unit/test_writeback_plan.py)."""

from __future__ import annotations

import dagster as dg
import pytest
import snowflake.connector

from crm_territory.schemas import TABLES
from crm_territory.storage.warehouse_ddl import apply_ddl
from crm_territory_tests.support.snowflake_fake import FAKE_ENV, fake_snowflake

pytestmark = pytest.mark.integration

WRITEBACK_COLUMNS = ["crm_owner_email", "crm_territory_id", "crm_assignment_version", "crm_etag"]


def test_an_older_crm_api_snapshot_is_upgraded_by_the_ddl_and_reads_back(monkeypatch, tmp_path) -> None:
    """A RAW.CRM_API_CLIENTS created before the snapshot kept the CRM's assignment, rows in it: applying the DDL adds
    the columns (empty for the old rows), and the table store reads the old rows with them empty."""
    from crm_territory.storage.snowflake import SnowflakeTableStore, snowflake_storage_resources

    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    with fake_snowflake():
        connection = snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})
        cursor = connection.cursor()
        for schema in ("RAW", "CORE"):
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.{schema}")
        columns = [c for c in TABLES["crm_api_clients"].model.to_schema().columns if c not in WRITEBACK_COLUMNS]
        types = {"source_page": "NUMBER(38, 0)", "pulled_at": "TIMESTAMP_TZ"}
        definitions = ", ".join(f"{c.upper()} {types.get(c, 'VARCHAR')}" for c in columns)
        cursor.execute(f"CREATE TABLE CRM_TERRITORY.RAW.CRM_API_CLIENTS ({definitions})")
        cursor.execute(
            "INSERT INTO CRM_TERRITORY.RAW.CRM_API_CLIENTS (CLIENT_ID, CLIENT_NAME, UPDATED_AT, SOURCE_PAGE, PULLED_AT) "
            "VALUES ('100001', 'Atlas Capital Partners', '2026-11-01T00:00:00Z', 1, '2026-11-01 06:00:00+00:00')"
        )
        apply_ddl(connection)
        cursor.execute("SELECT CLIENT_ID, CRM_OWNER_EMAIL, CRM_ETAG FROM CRM_TERRITORY.RAW.CRM_API_CLIENTS")
        assert cursor.fetchall() == [("100001", None, None)]
        store = snowflake_storage_resources(str(tmp_path))["table_store"]
        assert isinstance(store, SnowflakeTableStore)
        with dg.build_resources({"table_store": store}) as resources:
            previous = resources.table_store.read_previous("crm_api_clients")
        assert previous["client_id"].tolist() == ["100001"]
        assert previous[WRITEBACK_COLUMNS].isna().all().all()
        TABLES["crm_api_clients"].model.validate(previous)
        connection.close()
