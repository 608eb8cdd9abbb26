"""Materialization metadata every asset reports: row count, a markdown preview, the schema."""


import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10
SAMPLE_ROWS = 20  # failing rows an integrity check shows


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


def violations_result(
    violations: pd.DataFrame, *, blocking_severity: dg.AssetCheckSeverity, next_step: str, sample_rows: int = SAMPLE_ROWS, **fields: object
) -> dg.AssetCheckResult:
    """An integrity check's result: passed when ``violations`` is empty, else their count, a sample and the next step.

    ``fields`` may name the check (``check_name``, ``asset_key``: for checks an asset yields itself);
    the rest is metadata.
    """
    naming = {k: fields.pop(k) for k in ("check_name", "asset_key") if k in fields}
    passed = violations.empty
    return dg.AssetCheckResult(
        passed=passed,
        severity=blocking_severity,
        metadata={
            "violations": len(violations),
            **({} if passed else {"sample": dg.MetadataValue.md(markdown_table(violations, limit=sample_rows)), "next_step": next_step}),
            **fields,
        },
        **naming,
    )
