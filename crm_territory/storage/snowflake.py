"""Snowflake behind the same ``io_manager`` and ``table_store`` keys as the local CSV storage.

Each asset goes to the schema and table its spec names (raw_clients -> RAW.CLIENTS, client_dim ->
CORE.CLIENT_DIM, ...); what is read back is conformed to the Pandera model's dtypes (the warehouse
gives NUMBER back as float and names columns in upper case). The tables are created by
``infra/snowflake/tables.sql`` (``python -m crm_territory.cli apply-ddl``); a write to a missing table
fails and says so, rather than letting the connector create one with guessed types.

A write replaces the table's rows atomically: the frame is loaded into a staging table first
(``write_pandas``, whose stage commands would commit any open transaction), then one transaction
deletes the old rows and inserts the new ones. A failure at any point leaves the previous rows;
re-running gives the same table, never duplicated rows.

Built on dagster-snowflake's public ``SnowflakeResource`` (connection settings as EnvVars); the IO
manager is ours because the table layout, the atomic replace and the model's dtypes are ours.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
import pandas as pd
import snowflake.connector.pandas_tools as pandas_tools
from dagster_snowflake import SnowflakeResource

from crm_territory.schemas import COLUMN_DEFAULTS, TABLES, TableSpec, conform
from crm_territory.settings import check_snowflake_environment
from crm_territory.storage.table_store import TableStore, input_missing_ok, spec_for
from crm_territory.storage.writer_lock import WriterLockedIOManager


def _require_table(cursor, database: str, spec: TableSpec) -> None:
    """Tables come from the DDL; a missing one means the deployment skipped a step, and says which."""
    cursor.execute(f"SHOW TABLES LIKE '{spec.warehouse_table}' IN SCHEMA {database}.{spec.warehouse_schema}")
    if not cursor.fetchall():
        raise dg.Failure(
            f"Snowflake table {database}.{spec.warehouse_name} does not exist: run `python -m crm_territory.cli apply-ddl` first."
        )


def read_table(connection, database: str, spec: TableSpec) -> pd.DataFrame:
    """The whole table, with the model's columns and dtypes (a table written before a column was added gets its default)."""
    cursor = connection.cursor()
    _require_table(cursor, database, spec)
    cursor.execute(f"SELECT * FROM {database}.{spec.warehouse_name}")
    rows = cursor.fetchall()
    columns = [d[0] for d in cursor.description]
    return conform(pd.DataFrame(rows, columns=columns), spec.model, COLUMN_DEFAULTS.get(spec.name))


def replace_table(connection, database: str, spec: TableSpec, obj: pd.DataFrame) -> str:
    """Replace the table's rows with ``obj`` in one transaction (through a staging table); returns the table's name."""
    frame = conform(obj, spec.model).rename(columns=str.upper)
    schema, table = spec.warehouse_schema, spec.warehouse_table
    target, staging = f"{database}.{schema}.{table}", f"{table}__STAGING"
    cursor = connection.cursor()
    _require_table(cursor, database, spec)
    columns = ", ".join(frame.columns)
    try:
        if len(frame):
            # looked up on the module at call time: fakesnow's patch replaces it there
            pandas_tools.write_pandas(
                conn=connection, df=frame, table_name=staging, schema=schema, database=database,
                auto_create_table=True, overwrite=True, table_type="transient",
                use_logical_type=True, quote_identifiers=True,
            )  # fmt: skip
        cursor.execute("BEGIN")
        cursor.execute(f"DELETE FROM {target}")
        if len(frame):
            cursor.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {database}.{schema}.{staging}")
        cursor.execute("COMMIT")
    except Exception:
        cursor.execute("ROLLBACK")
        raise
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS {database}.{schema}.{staging}")
    return target


def _database(snowflake: SnowflakeResource) -> str:
    """The resource's database: optional in SnowflakeResource's type, always set by snowflake_connection_config."""
    database = snowflake.database
    assert database is not None, "a SnowflakeResource without a database: build it from snowflake_connection_config()"
    return database


class SnowflakeTablesIOManager(WriterLockedIOManager):
    """Each asset as the Snowflake table its spec names, replaced atomically, read back with the model's dtypes.

    ``data_dir`` is the data folder (landing, rules) this deployment reads: its writer lock is held for the run.
    """

    snowflake: SnowflakeResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        spec = spec_for(context.asset_key)
        with self.snowflake.get_connection() as connection:
            target = replace_table(connection, _database(self.snowflake), spec, obj)
        context.add_output_metadata({"dagster/storage_kind": "snowflake", "table": target})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        spec = spec_for(context.asset_key)
        with self.snowflake.get_connection() as connection:
            frame = read_table(connection, _database(self.snowflake), spec)
        # the DDL creates every table up front, so "never written" reads as empty here
        return None if frame.empty and input_missing_ok(context) else frame


class SnowflakeTableStore(TableStore):
    """The previous version of a table, read from Snowflake (None while the table is empty)."""

    snowflake: SnowflakeResource

    def read_previous(self, table: str) -> pd.DataFrame | None:
        with self.snowflake.get_connection() as connection:
            frame = read_table(connection, _database(self.snowflake), TABLES[table])
        return None if frame.empty else frame


def snowflake_connection_config() -> dict[str, Any]:
    """Connection settings as EnvVars: resolved at run time, shown by name (never by value) in the UI."""
    config: dict[str, Any] = {
        "account": dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        "user": dg.EnvVar("SNOWFLAKE_USER"),
        "database": dg.EnvVar("SNOWFLAKE_DATABASE"),
        "warehouse": dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
    }
    if os.environ.get("SNOWFLAKE_ROLE"):
        config["role"] = dg.EnvVar("SNOWFLAKE_ROLE")
    if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        config["private_key_path"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH")
    elif os.environ.get("SNOWFLAKE_PRIVATE_KEY"):
        config["private_key"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")
    else:
        config["password"] = dg.EnvVar("SNOWFLAKE_PASSWORD")
    if config.keys() & {"private_key_path", "private_key"} and os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
        config["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    endpoint = endpoint_overrides()
    if endpoint:
        config["additional_snowflake_connection_args"] = endpoint
    return config


def endpoint_overrides() -> dict[str, Any]:
    """SNOWFLAKE_HOST / _PORT / _PROTOCOL: a private-link host or a proxy (and the tests' local endpoint)."""
    overrides: dict[str, Any] = {}
    if os.environ.get("SNOWFLAKE_HOST"):
        overrides["host"] = os.environ["SNOWFLAKE_HOST"]
    if os.environ.get("SNOWFLAKE_PORT"):
        overrides["port"] = int(os.environ["SNOWFLAKE_PORT"])
    if os.environ.get("SNOWFLAKE_PROTOCOL"):
        overrides["protocol"] = os.environ["SNOWFLAKE_PROTOCOL"]
    return overrides


def connect_from_environment():
    """A connection context from the SNOWFLAKE_* variables, for ``cli apply-ddl`` (outside a run)."""
    check_snowflake_environment()
    config: dict[str, Any] = {
        k: os.environ[v.env_var_name] if isinstance(v, dg.EnvVar) else v for k, v in snowflake_connection_config().items()
    }
    return SnowflakeResource(**config).get_connection()


def snowflake_storage_resources(data_dir: str, lock_wait_seconds: float = 300.0) -> dict[str, object]:
    snowflake = SnowflakeResource(**snowflake_connection_config())
    return {
        "io_manager": SnowflakeTablesIOManager(snowflake=snowflake, data_dir=data_dir, lock_wait_seconds=lock_wait_seconds),
        "table_store": SnowflakeTableStore(snowflake=snowflake),
    }
