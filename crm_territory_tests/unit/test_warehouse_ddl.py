"""infra/snowflake/tables.sql agrees with the Pandera models, column by column and type by type."""

import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from crm_territory.schemas import JOURNAL_TABLES, TABLES, WAREHOUSE_TABLES, model_dtypes
from crm_territory.storage.warehouse_ddl import DDL_PATH, ddl_statements

# every table the warehouse holds: the assets', those computed inside it, and the write-back's own (log and lease)
ALL_TABLES = {**TABLES, **WAREHOUSE_TABLES, **JOURNAL_TABLES}


def snowflake_type(pandas_dtype: object) -> str:
    """The warehouse type each pandas dtype of the models is stored as (sqlglot's canonical spelling)."""
    if pandas_dtype == object:
        return "VARCHAR"
    if isinstance(pandas_dtype, pd.Int64Dtype):
        return "DECIMAL(38, 0)"
    if str(pandas_dtype) == "float64":
        return "DOUBLE"  # sqlglot spells Snowflake FLOAT (a double) this way
    if isinstance(pandas_dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if str(pandas_dtype) == "bool":
        return "BOOLEAN"
    raise AssertionError(f"no warehouse type for {pandas_dtype!r}: extend the DDL and this mapping together")


def ddl_tables() -> dict[str, list[tuple[str, str, bool]]]:
    """{SCHEMA.TABLE: [(column, type, nullable)]} parsed from the DDL file."""
    tables = {}
    for statement in sqlglot.parse(DDL_PATH.read_text(), read="snowflake"):
        if isinstance(statement, exp.Create) and statement.args.get("kind") == "TABLE":
            schema = statement.this
            columns = []
            for column in schema.expressions:
                not_null = any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint) for c in column.constraints)
                columns.append((column.name.lower(), column.args["kind"].sql("snowflake").upper(), not not_null))
            tables[schema.this.sql("snowflake").upper()] = columns
    return tables


def test_every_model_has_exactly_one_table():
    assert sorted(ddl_tables()) == sorted(spec.warehouse_name for spec in ALL_TABLES.values())


@pytest.mark.parametrize("table", sorted(ALL_TABLES))
def test_columns_types_and_nullability_match_the_model(table):
    spec = ALL_TABLES[table]
    schema = spec.model.to_schema()
    expected = [(name, snowflake_type(dtype), schema.columns[name].nullable) for name, dtype in model_dtypes(spec.model).items()]
    assert ddl_tables()[spec.warehouse_name] == expected


def test_statements_create_only_if_missing_so_applying_twice_is_safe():
    statements = ddl_statements()
    creates = [s for s in statements if s.upper().startswith("CREATE")]
    upgrades = [s for s in statements if s.upper().startswith("ALTER TABLE")]
    assert len(creates) == len(ALL_TABLES)  # schemas come from Terraform, not from the loader's DDL
    assert len(creates) + len(upgrades) == len(statements)
    # an upgrade adds a column a model gained since tables were first created, with the default older rows hold
    for statement in upgrades:
        assert " ADD COLUMN IF NOT EXISTS " in statement.upper() and " DEFAULT " in statement.upper()
    assert all("IF NOT EXISTS" in s.upper() for s in statements)
    assert not any(s.upper().startswith(("DROP", "DELETE", "TRUNCATE", "CREATE OR REPLACE")) for s in statements)
