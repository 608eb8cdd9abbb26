"""Snowflake behind the same ``io_manager`` and ``table_store`` keys as the local CSV storage.

The IO manager is dagster-snowflake-pandas', narrowed to this project's tables: each asset goes to
the schema and table ``TABLES`` names (raw_clients -> RAW.CLIENTS, client_dim -> CORE.CLIENT_DIM,
...), and what is read back is conformed to the Pandera model's dtypes (the warehouse gives NUMBER
back as float and names columns in upper case). The tables are created by
``infra/snowflake/tables.sql`` (``python -m crm_territory.cli apply-ddl``); a write to a missing
table fails and says so, rather than letting the connector create one with guessed types.

A write replaces the table's rows atomically: the frame is loaded into a staging table first
(``write_pandas``, whose stage commands would commit any open transaction), then one transaction
deletes the old rows and inserts the new ones. A failure at any point leaves the previous rows;
re-running gives the same table, never duplicated rows.
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
from dagster._core.storage.db_io_manager import DbIOManager, TableSlice
from dagster_snowflake import SnowflakeResource
from dagster_snowflake.snowflake_io_manager import SnowflakeDbClient
from dagster_snowflake_pandas import SnowflakePandasIOManager, SnowflakePandasTypeHandler
from dagster_snowflake_pandas import snowflake_pandas_type_handler as pandas_type_handler

from crm_territory.resources.storage import TableStore
from crm_territory.schemas import COLUMN_DEFAULTS, TABLES, conform
from crm_territory.settings import check_snowflake_environment


def _spec_for(asset_key: dg.AssetKey):
    name = asset_key.path[-1]
    if name not in TABLES:
        raise KeyError(f"no warehouse table for asset {asset_key.to_user_string()}; add it to crm_territory.schemas.TABLES")
    return TABLES[name]


def _require_table(cursor, database: str, schema: str, table: str) -> None:
    """Tables come from the DDL; a missing one means the deployment skipped a step, and says which."""
    cursor.execute(f"SHOW TABLES LIKE '{table}' IN SCHEMA {database}.{schema}")
    if not cursor.fetchall():
        raise dg.Failure(f"Snowflake table {database}.{schema}.{table} does not exist: run `python -m crm_territory.cli apply-ddl` first.")


class _ProjectTablesDbIOManager(DbIOManager):
    """Routes each asset to the schema and table ``TABLES`` gives it."""

    def _get_table_slice(self, context, output_context) -> TableSlice:
        table_slice = super()._get_table_slice(context, output_context)
        spec = _spec_for(context.asset_key)
        return table_slice._replace(schema=spec.warehouse_schema, table=spec.warehouse_table)


class _ReplaceInHandlerDbClient(SnowflakeDbClient):
    """The handler deletes the old rows inside its own transaction, not before the load."""

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        return None


class _ModelTypedPandasHandler(SnowflakePandasTypeHandler):
    """Writes the model's columns through a staging table in one transaction; reads back with the model's dtypes."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection) -> Mapping[str, Any]:
        spec = _spec_for(context.asset_key)
        frame = conform(obj, spec.model).rename(columns=str.upper)
        database, schema, table = table_slice.database, table_slice.schema, table_slice.table
        target, staging = f"{database}.{schema}.{table}", f"{table}__STAGING"
        cursor = connection.cursor()
        _require_table(cursor, database, schema, table)
        columns = ", ".join(frame.columns)
        try:
            if len(frame):
                # module attribute, not a name imported here: the fakesnow tests patch it there
                pandas_type_handler.write_pandas(
                    conn=connection, df=frame, table_name=staging, schema=schema, database=database,
                    auto_create_table=True, overwrite=True, table_type="transient",
                    use_logical_type=True, quote_identifiers=True,
                )
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
        return {"dagster/row_count": len(frame), "dagster/storage_kind": "snowflake", "table": target}

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        spec = _spec_for(context.asset_key)
        return conform(super().load_input(context, table_slice, connection), spec.model, COLUMN_DEFAULTS.get(spec.name))


class SnowflakeTablesIOManager(SnowflakePandasIOManager):
    """dagster-snowflake-pandas, writing this project's tables where the seed's layers put them."""

    def create_io_manager(self, context) -> DbIOManager:
        return _ProjectTablesDbIOManager(
            db_client=_ReplaceInHandlerDbClient(),
            io_manager_name="SnowflakeTablesIOManager",
            database=self.database,
            schema=self.schema_,
            type_handlers=[_ModelTypedPandasHandler()],
            default_load_type=pd.DataFrame,
        )


class SnowflakeTableStore(TableStore):
    """The previous version of a table, read from Snowflake (None while the table is empty)."""

    snowflake: dg.ResourceDependency[SnowflakeResource]

    def read_previous(self, table: str) -> pd.DataFrame | None:
        spec = TABLES[table]
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            _require_table(cursor, self.snowflake.database, spec.warehouse_schema, spec.warehouse_table)
            cursor.execute(f"SELECT * FROM {self.snowflake.database}.{spec.warehouse_name}")
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        if not rows:
            return None
        return conform(pd.DataFrame(rows, columns=columns), spec.model, COLUMN_DEFAULTS.get(spec.name))


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
    config = {k: os.environ[v.env_var_name] if isinstance(v, dg.EnvVar) else v for k, v in snowflake_connection_config().items()}
    return SnowflakeResource(**config).get_connection()


def snowflake_storage_resources() -> dict[str, object]:
    config = snowflake_connection_config()
    return {
        "io_manager": SnowflakeTablesIOManager(**config),
        "table_store": SnowflakeTableStore(snowflake=SnowflakeResource(**config)),
    }
