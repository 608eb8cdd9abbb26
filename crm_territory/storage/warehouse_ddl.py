"""The warehouse DDL (``infra/snowflake/tables.sql``): read, split into statements, applied in order."""

from pathlib import Path

import sqlglot

DDL_PATH = Path(__file__).resolve().parents[2] / "infra" / "snowflake" / "tables.sql"


def ddl_statements(sql_text: str | None = None) -> list[str]:
    """The DDL file's statements, comments stripped, in file order."""
    text = DDL_PATH.read_text() if sql_text is None else sql_text
    return [statement.sql(dialect="snowflake") for statement in sqlglot.parse(text, read="snowflake") if statement is not None]


def apply_ddl(connection, sql_text: str | None = None) -> list[str]:
    """Run every statement on a Snowflake DB-API connection (idempotent: IF NOT EXISTS). Returns them."""
    statements = ddl_statements(sql_text)
    cursor = connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    return statements
