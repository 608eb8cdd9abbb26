"""Materialization metadata every asset reports: row count, a markdown preview, the schema."""


import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10


def markdown_table(df: pd.DataFrame, limit: int = PREVIEW_ROWS) -> str:
    if df.empty:
        return "_no rows_"
    shown = df.head(limit).astype(object).where(df.head(limit).notna(), "")
    text = shown.to_markdown(index=False)
    return text if len(df) <= limit else f"{text}\n\n_{limit} of {len(df):,} rows_"


def table_metadata(df: pd.DataFrame, **extra: object) -> dict[str, object]:
    schema = dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])
    return {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(markdown_table(df)),
        **extra,
    }
