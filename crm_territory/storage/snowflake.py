"""Snowflake behind the same ``io_manager`` and ``table_store`` keys as the local CSV storage.

Each asset goes to the schema and table its spec names (raw_clients -> RAW.CLIENTS, client_dim ->
CORE.CLIENT_DIM, ...); what is read back is conformed to the Pandera model's dtypes (the warehouse
gives NUMBER back as float and names columns in upper case). The tables are created by
``infra/snowflake/tables.sql`` (``python -m crm_territory.cli apply-ddl``); a write to a missing table
fails and says so, rather than letting the connector create one with guessed types.

A run's tables are published as one set: each output is loaded into a run-scoped staging table
(``TABLE__RUN_<run>``; ``write_pandas``, whose stage commands would commit any open transaction), and
when the run has succeeded ONE transaction deletes every target's old rows and inserts the staged
ones. A failure at any point leaves every table's previous rows; staging tables a dead run left are
dropped by the next run, which says so. Re-running gives the same tables, never duplicated rows.

SQL that runs inside the warehouse over a run's tables (``client_placement_in_warehouse``) names them through
``table_for_run`` (the run's staged copy, else the published table) and stages its result with ``stage_select``
(``CREATE TABLE ... AS``), so that table is published, or dropped, with the run's set like any other.

Built on dagster-snowflake's public ``SnowflakeResource`` (connection settings as EnvVars); the IO
manager is ours because the table layout, the atomic replace and the model's dtypes are ours.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import pandas as pd
import snowflake.connector.pandas_tools as pandas_tools
from dagster_snowflake import SnowflakeResource
from pydantic import PrivateAttr

from crm_territory.schemas import COLUMN_DEFAULTS, TABLES, WAREHOUSE_TABLES, TableSpec, conform, empty_frame
from crm_territory.settings import check_snowflake_environment
from crm_territory.storage.table_set_io import RunLog, TableSetIOManager
from crm_territory.storage.table_store import TableStore


def require_table(cursor, database: str, spec: TableSpec) -> None:
    """Tables come from the DDL; a missing one means the deployment skipped a step, and says which."""
    cursor.execute(f"SHOW TABLES LIKE '{spec.warehouse_table}' IN SCHEMA {database}.{spec.warehouse_schema}")
    if not cursor.fetchall():
        raise dg.Failure(
            f"Snowflake table {database}.{spec.warehouse_name} does not exist: run `python -m crm_territory.cli apply-ddl` first."
        )


def read_table(connection, database: str, spec: TableSpec, name: str | None = None) -> pd.DataFrame:
    """The whole table (or its staging copy ``name``), with the model's columns and dtypes.

    A table written before a column was added gets the column's default.
    """
    cursor = connection.cursor()
    require_table(cursor, database, spec)
    cursor.execute(f"SELECT * FROM {database}.{name or spec.warehouse_name}")
    rows = cursor.fetchall()
    columns = [d[0] for d in cursor.description]
    return conform(pd.DataFrame(rows, columns=columns), spec.model, COLUMN_DEFAULTS.get(spec.name))


def staged_spec(table: str) -> TableSpec:
    """The spec of a table a run may stage: an asset's (``TABLES``) or one computed inside the warehouse
    (``WAREHOUSE_TABLES``: only this storage has them)."""
    return TABLES[table] if table in TABLES else WAREHOUSE_TABLES[table]


STAGING_MARK = "__RUN_"  # a run's staged copy of TABLE is TABLE__RUN_<first 8 characters of the run id>


def staging_table_name(spec: TableSpec, run_id: str) -> str:
    return f"{spec.warehouse_table}{STAGING_MARK}{run_id[:8].upper()}"


def stage_table(connection, database: str, spec: TableSpec, obj: pd.DataFrame, run_id: str) -> str | None:
    """Load ``obj`` into the run's staging copy of the table (no reader looks there); None for an empty frame.

    The staging table is created from the frame (``write_pandas``, whose stage commands commit any open
    transaction: that is why staging comes before, and outside, the publishing transaction).
    """
    frame = conform(obj, spec.model).rename(columns=str.upper)
    cursor = connection.cursor()
    require_table(cursor, database, spec)
    staging = staging_table_name(spec, run_id)
    cursor.execute(f"DROP TABLE IF EXISTS {database}.{spec.warehouse_schema}.{staging}")
    if not len(frame):
        return None
    # looked up on the module at call time: fakesnow's patch replaces it there
    pandas_tools.write_pandas(
        conn=connection, df=frame, table_name=staging, schema=spec.warehouse_schema, database=database,
        auto_create_table=True, overwrite=True, table_type="transient",
        use_logical_type=True, quote_identifiers=True,
    )  # fmt: skip
    return staging


def publish_tables(connection, database: str, staged: dict[str, str | None]) -> None:
    """Replace every target table's rows with its staged rows in ONE transaction: readers see all of it or none.

    ``staged`` maps a table to its staging table (None: the run wrote it empty). The staging tables are
    dropped once the transaction has committed; a failure rolls every table back to its previous rows.
    """
    cursor = connection.cursor()
    try:
        cursor.execute("BEGIN")
        for table, staging in staged.items():
            spec = staged_spec(table)
            target = f"{database}.{spec.warehouse_name}"
            cursor.execute(f"DELETE FROM {target}")
            if staging is not None:
                columns = ", ".join(c.upper() for c in spec.model.to_schema().columns)
                cursor.execute(
                    f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {database}.{spec.warehouse_schema}.{staging}"
                )
        cursor.execute("COMMIT")
    except Exception:
        cursor.execute("ROLLBACK")
        raise
    drop_staging(connection, database, staged)


def drop_staging(connection, database: str, staged: dict[str, str | None]) -> None:
    cursor = connection.cursor()
    for table, staging in staged.items():
        if staging is not None:
            cursor.execute(f"DROP TABLE IF EXISTS {database}.{staged_spec(table).warehouse_schema}.{staging}")


def leftover_staging(connection, database: str) -> list[str]:
    """Staging tables that runs which died left behind (``SCHEMA.TABLE__RUN_xxxxxxxx``)."""
    cursor = connection.cursor()
    found = []
    for schema in sorted({spec.warehouse_schema for spec in [*TABLES.values(), *WAREHOUSE_TABLES.values()]}):
        cursor.execute(f"SHOW TABLES LIKE '%{STAGING_MARK}%' IN SCHEMA {database}.{schema}")
        names = [row[1] for row in cursor.fetchall()]  # SHOW TABLES: created_on, name, ...
        found += [f"{schema}.{name}" for name in names if STAGING_MARK in name.upper()]
    return found


def warehouse_location(account: str | None, database: str, schema: str) -> str:
    """Where a table lives in Snowflake, as materializations record it: account, database and schema (no user, no secret).

    Unquoted identifiers are case-insensitive (the database upper-cased, as Snowflake stores it); so is the account.
    """
    return f"snowflake:{(account or '').lower()}/{database.upper()}.{schema.upper()}"


def _location(snowflake: SnowflakeResource, table: str) -> str:
    return warehouse_location(snowflake.account, _database(snowflake), staged_spec(table).warehouse_schema)


def _database(snowflake: SnowflakeResource) -> str:
    """The resource's database: optional in SnowflakeResource's type, always set by snowflake_connection_config."""
    database = snowflake.database
    assert database is not None, "a SnowflakeResource without a database: build it from snowflake_connection_config()"
    return database


class SnowflakeTablesIOManager(TableSetIOManager):
    """Each asset as the Snowflake table its spec names, read back with the model's dtypes.

    A run's tables are staged as ``TABLE__RUN_<run>`` and published together in one transaction when
    the run succeeds. ``data_dir`` is the data folder (landing, rules) this deployment reads: its writer
    lock is held for the run.
    """

    snowflake: SnowflakeResource
    _staged: dict[str, str | None] = PrivateAttr(default_factory=dict)

    def recover(self, log: RunLog) -> None:
        self._staged = {}
        with self.snowflake.get_connection() as connection:
            leftovers = leftover_staging(connection, _database(self.snowflake))
            for name in leftovers:
                connection.cursor().execute(f"DROP TABLE IF EXISTS {_database(self.snowflake)}.{name}")
        if leftovers:
            log.warning(
                f"Dropped {len(leftovers)} staging table(s) that runs which stopped before publishing left behind "
                f"({', '.join(leftovers)}); none of their rows was ever visible, the published tables are unchanged."
            )

    def stage(self, table: str, frame: pd.DataFrame) -> dict[str, dg.RawMetadataValue]:
        spec = TABLES[table]
        with self.snowflake.get_connection() as connection:
            self._staged[table] = stage_table(connection, _database(self.snowflake), spec, frame, self._run_id)
        return {"dagster/storage_kind": "snowflake", "table": f"{_database(self.snowflake)}.{spec.warehouse_name}"}

    def storage_location(self, table: str) -> str:
        return _location(self.snowflake, table)

    def read_for_run(self, table: str, missing_ok: bool) -> pd.DataFrame | None:
        spec = TABLES[table]
        database = _database(self.snowflake)
        if table in self._staged:
            staging = self._staged[table]
            if staging is None:  # staged empty
                return empty_frame(spec.model)
            with self.snowflake.get_connection() as connection:
                return read_table(connection, database, spec, f"{spec.warehouse_schema}.{staging}")
        with self.snowflake.get_connection() as connection:
            frame = read_table(connection, database, spec)
        # the DDL creates every table up front, so "never written" reads as empty here
        return None if frame.empty and missing_ok else frame

    # --- SQL run where the tables live (crm_territory/defs/rules/placement_in_warehouse.py) ----------------
    def table_for_run(self, table: str) -> str | None:
        """``DATABASE.SCHEMA.TABLE`` of this run's version of ``table``, for SQL that reads it inside the warehouse
        (the rows ``read_for_run`` would fetch, without fetching them): the run's staging copy (``TABLE__RUN_<run>``)
        if this run wrote the table, else the published table. None: this run wrote it with no rows.

        During a run the published table still holds the previous run's rows: SQL over this run's tables must name
        them through here, never as ``CORE.<TABLE>``.
        """
        spec = staged_spec(table)
        database = _database(self.snowflake)
        if table in self._staged:
            staging = self._staged[table]
            return None if staging is None else f"{database}.{spec.warehouse_schema}.{staging}"
        return f"{database}.{spec.warehouse_name}"

    def stage_select(self, connection, table: str, sql: str, params: Mapping[str, Any]) -> str | None:
        """Stage ``table`` for this run from ``sql``, a ``SELECT`` giving its model's columns, run inside the warehouse
        on ``connection`` (``CREATE TRANSIENT TABLE <TABLE__RUN_<run>> AS <sql>``): no row passes through this process.

        The staged table is published with the run's other tables in one transaction when the run succeeds, and
        dropped with them when it fails, exactly like a table staged from a DataFrame. Returns the staging table's
        name, None when the statement gave no rows (published as an empty table).
        """
        spec = staged_spec(table)
        database = _database(self.snowflake)
        cursor = connection.cursor()
        require_table(cursor, database, spec)
        self._reads.forget(table)
        staging = staging_table_name(spec, self._run_id)
        name = f"{database}.{spec.warehouse_schema}.{staging}"
        # recorded first: if the statement fails, the run's discard drops whatever it left
        self._staged[table] = staging
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
        cursor.execute(f"CREATE TRANSIENT TABLE {name} AS {sql}", dict(params))
        cursor.execute(f"SELECT COUNT(*) FROM {name}")
        count = cursor.fetchone()
        if count is None or count[0] == 0:  # as stage_table: an empty table has no staging copy
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            self._staged[table] = None
        return self._staged[table]

    def publish(self, log: RunLog) -> None:
        if not self._staged:
            return
        with self.snowflake.get_connection() as connection:
            publish_tables(connection, _database(self.snowflake), self._staged)
        log.info(
            f"Published {len(self._staged)} table(s) of run {self._run_id[:8]} in one transaction: {', '.join(self._staged)}"
        )
        self._staged = {}

    def discard(self, log: RunLog, why: str) -> None:
        if not self._staged:
            return
        with self.snowflake.get_connection() as connection:
            drop_staging(connection, _database(self.snowflake), self._staged)
        log.error(
            f"None of the {len(self._staged)} table(s) run {self._run_id[:8]} wrote was published{why}: "
            f"{', '.join(self._staged)}. The published tables are unchanged; re-run once the cause is fixed."
        )
        self._staged = {}


class SnowflakeTableStore(TableStore):
    """The previous version of a table, read from Snowflake (None while the table is empty)."""

    snowflake: SnowflakeResource

    def read_previous(self, table: str) -> pd.DataFrame | None:
        with self.snowflake.get_connection() as connection:
            frame = read_table(connection, _database(self.snowflake), TABLES[table])
        return None if frame.empty else frame

    def iter_previous(self, table: str, rows: int = 10_000, order_by: list[str] | None = None) -> Iterator[pd.DataFrame] | None:
        """Fetched ``rows`` at a time from one query (ordered by ``order_by``: a warehouse table has no order)."""
        spec = TABLES[table]
        database = _database(self.snowflake)
        with self.snowflake.get_connection() as connection:
            cursor = connection.cursor()
            require_table(cursor, database, spec)
            cursor.execute(f"SELECT COUNT(*) FROM {database}.{spec.warehouse_name}")
            count = cursor.fetchone()
            empty = count is None or count[0] == 0
        if empty:
            return None
        return self._fetch(spec, database, rows, order_by)

    def _fetch(self, spec: TableSpec, database: str, rows: int, order_by: list[str] | None) -> Iterator[pd.DataFrame]:
        order = f" ORDER BY {', '.join(c.upper() for c in order_by)}" if order_by else ""
        with self.snowflake.get_connection() as connection:
            cursor = connection.cursor()
            cursor.execute(f"SELECT * FROM {database}.{spec.warehouse_name}{order}")
            columns = [d[0] for d in cursor.description]
            while batch := cursor.fetchmany(rows):
                yield conform(pd.DataFrame(batch, columns=columns), spec.model, COLUMN_DEFAULTS.get(spec.name))

    def location(self, table: str) -> str:
        return _location(self.snowflake, table)


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
