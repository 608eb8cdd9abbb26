"""Snowflake behind the same ``io_manager`` and ``table_store`` keys as the local CSV storage.

The IO manager is dagster-snowflake-pandas' own, narrowed to this project's tables: each asset goes
to the schema and table ``TABLES`` names (raw_clients -> RAW.CLIENTS, client_dim ->
CORE.CLIENT_DIM, ...), and what is read back is conformed to the Pandera model's dtypes (the
warehouse gives NUMBER back as float and names columns in upper case). The tables themselves are
created by ``infra/snowflake/tables.sql`` (``python -m crm_territory.cli apply-ddl``), never by a
write: a table whose shape drifted from the model fails loudly instead of being re-created.

Each write deletes the table's rows and writes the new ones (dagster-snowflake's behaviour for
unpartitioned assets), so re-running gives the same table, never duplicated rows.
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

from crm_territory.resources.storage import TableStore
from crm_territory.schemas import TABLES, conform
from crm_territory.settings import check_snowflake_environment


def _spec_for(asset_key: dg.AssetKey):
    name = asset_key.path[-1]
    if name not in TABLES:
        raise KeyError(f"no warehouse table for asset {asset_key.to_user_string()}; add it to crm_territory.schemas.TABLES")
    return TABLES[name]


class _ProjectTablesDbIOManager(DbIOManager):
    """Routes each asset to the schema and table ``TABLES`` gives it."""

    def _get_table_slice(self, context, output_context) -> TableSlice:
        table_slice = super()._get_table_slice(context, output_context)
        spec = _spec_for(context.asset_key)
        return table_slice._replace(schema=spec.warehouse_schema, table=spec.warehouse_table)


class _ModelTypedPandasHandler(SnowflakePandasTypeHandler):
    """Writes the model's columns in order; reads back with the model's dtypes."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection) -> Mapping[str, Any]:
        spec = _spec_for(context.asset_key)
        return super().handle_output(context, table_slice, conform(obj, spec.model), connection)

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        spec = _spec_for(context.asset_key)
        return conform(super().load_input(context, table_slice, connection), spec.model)


class SnowflakeTablesIOManager(SnowflakePandasIOManager):
    """dagster-snowflake-pandas, writing this project's tables where the seed's layers put them."""

    def create_io_manager(self, context) -> DbIOManager:
        return _ProjectTablesDbIOManager(
            db_client=SnowflakeDbClient(),
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
            cursor.execute(f"SELECT * FROM {self.snowflake.database}.{spec.warehouse_name}")
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        if not rows:
            return None
        return conform(pd.DataFrame(rows, columns=columns), spec.model)


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
