"""The warehouse DDL (``infra/snowflake/tables.sql``): read, split into statements, applied in order.

The file is ours and simple (CREATE TABLE statements, ``--`` comments, no ';' inside values), so
splitting needs no SQL parser at run time; the tests parse it properly to compare it with the models.
"""

import re
from pathlib import Path

DDL_PATH = Path(__file__).resolve().parents[2] / "infra" / "snowflake" / "tables.sql"

_COMMENT = re.compile(r"--[^\n]*")


def ddl_statements(sql_text: str | None = None) -> list[str]:
    """The DDL's statements, comments stripped, whitespace collapsed, in file order."""
    text = DDL_PATH.read_text() if sql_text is None else sql_text
    statements = (" ".join(part.split()) for part in _COMMENT.sub("", text).split(";"))
    return [statement for statement in statements if statement]


def apply_ddl(connection, sql_text: str | None = None) -> list[str]:
    """Run every statement on a Snowflake DB-API connection (idempotent: IF NOT EXISTS). Returns them."""
    statements = ddl_statements(sql_text)
    cursor = connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    return statements
