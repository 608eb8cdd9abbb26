"""Check factories: one turns each Pandera model into a blocking schema check; one shapes every integrity check's result.

A failing blocking check (severity ERROR) stops the downstream assets of the run. Every failing
check's metadata says how many of what failed (named for what is counted: rows, batches, spellings),
a sample of them, and what to do next. A WARN check about clients also lists them
(``affected_clients``: client_key, name and the field at fault, with the total), so its page answers
"which clients?" without another tool.
"""

import functools
import re
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
from pandera.engines import pandas_engine

from crm_territory.schemas import TableSpec
from crm_territory.wiring.metadata import SAMPLE_ROWS, markdown_table


def schema_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """A blocking check validating the table against its Pandera model lazily (every failure, not the first)."""
    table, model = spec.name, spec.model

    @dg.asset_check(
        asset=table,
        name=f"{table}_matches_schema",
        blocking=True,
        description=f"Every row of {table} satisfies the {model.__name__} Pandera model (types, nulls, uniqueness, allowed values, patterns).",
    )
    def _check(context: dg.AssetCheckExecutionContext, asset_value: pd.DataFrame) -> dg.AssetCheckResult:
        if passes_schema(model, asset_value):
            return dg.AssetCheckResult(passed=True, metadata={"rows_validated": len(asset_value), "failing_values": 0})
        try:
            # the fast path found a problem (or could not tell): Pandera itself says which rows and rules fail
            model.validate(asset_value, lazy=True)
        except pandera.errors.SchemaErrors as errors:
            cases = errors.failure_cases.copy()
            key = asset_value.columns[0]  # each model's first column names the row (client_key, territory_id, ...)
            rows = pd.to_numeric(cases["index"], errors="coerce")
            known = rows.notna() & rows.isin(asset_value.index)
            cases[key] = None
            cases.loc[known, key] = asset_value.loc[rows[known].astype(int), key].to_numpy()
            summary = cases.groupby(["column", "check"], dropna=False).size().rename("failures").reset_index()
            context.log.error(f"{table}: {len(cases):,} schema failure(s); see the check's metadata")
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failing_values": len(cases),
                    "failing_values_by_rule": dg.MetadataValue.md(markdown_table(summary, limit=50)),
                    "failure_cases_sample": dg.MetadataValue.md(
                        markdown_table(cases[[key, "column", "check", "failure_case"]], limit=SAMPLE_ROWS)
                    ),
                    "next_step": f"Fix the rule that produced these rows, or the model {model.__name__} in crm_territory/schemas.py if it is wrong; then re-materialize {table}.",
                },
            )
        return dg.AssetCheckResult(passed=True, metadata={"rows_validated": len(asset_value), "failing_values": 0})

    # the asset is loaded through the IO manager under the parameter name asset_value
    return _check


def matches_by_value(series: pd.Series, pattern: str | re.Pattern[str]) -> pd.Series:
    """``series.str.match(pattern, na=False)`` on a text column, the regex run once per distinct value.

    The same Python regex as Pandera's ``str_matches``, so the same answers; our pattern-checked columns
    (source systems, hashes, territory ids, e-mails) repeat few values, so this is a fraction of a call per row.
    """
    regex = re.compile(pattern)
    codes, uniques = pd.factorize(series)  # nulls are code -1
    matched = np.fromiter((isinstance(v, str) and regex.match(v) is not None for v in uniques), dtype=bool, count=len(uniques))
    result = np.zeros(len(series), dtype=bool)
    known = codes >= 0
    result[known] = matched[codes[known]]
    return pd.Series(result, index=series.index)


def _fast_check(check: pa.Check) -> pa.Check:
    if check.name != "str_matches":
        return check
    pattern = check.statistics["pattern"]
    return pa.Check(lambda series: matches_by_value(series, pattern), name="str_matches", ignore_na=check.ignore_na)


@functools.cache
def _lenient_schema(model: type[pa.DataFrameModel]) -> tuple[pa.DataFrameSchema, tuple[str, ...]]:
    """The model's schema without the ``str`` dtype of its text columns (and with ``str_matches`` per distinct
    value), and the text columns' names."""
    schema = model.to_schema()
    text = tuple(name for name, column in schema.columns.items() if isinstance(column.dtype, pandas_engine.NpString))
    changes = {
        name: {"dtype": None if name in text else column.dtype, "checks": [_fast_check(c) for c in column.checks]}
        for name, column in schema.columns.items()
    }
    return schema.update_columns(changes), text


def text_columns_hold_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> bool:
    """True when each column is of object dtype and every non-null value in it is a ``str``.

    This is what Pandera's ``str`` dtype check accepts (``isinstance(x, str) or isna(x)`` per value), done by
    pandas' C type inference instead of a Python call per value: at a million rows that call is most of a
    schema check's time. Anything unusual (another dtype, a missing or repeated column) answers False, never
    a guess: the caller then asks Pandera.
    """
    if not frame.columns.is_unique:
        return False
    for name in columns:
        if name not in frame.columns or frame[name].dtype != object:
            return False
        column = frame[name]
        values = column.to_numpy()[~column.isna().to_numpy()]
        if len(values) and pd.api.types.infer_dtype(values, skipna=False) != "string":
            return False
    return True


def passes_schema(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> bool:
    """True only if ``model.validate(frame)`` would pass; False when it fails or may fail (ask Pandera then).

    The same Pandera schema validates every rule but the text columns' dtype, which ``text_columns_hold_text``
    checks vectorised; together they accept exactly what the model accepts. On False the caller runs the
    model itself, so a failing check reports Pandera's own failure cases.
    """
    schema, text = _lenient_schema(model)
    if not text_columns_hold_text(frame, text):
        return False
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors:
        return False
    return True


def client_sample(clients: pd.DataFrame, limit: int = SAMPLE_ROWS, *, spread_by: str | None = None) -> dg.MetadataValue:
    """The clients a check is about, as a markdown table: at most ``limit`` of them, and how many in all.

    ``clients`` holds one row per client with ``client_key`` first, then its name and the field at
    fault, and nothing more: a check's metadata is stored on every run and shown to anyone with the UI,
    so it names clients but never carries whole client records. The sample is the first clients by
    client_key; with ``spread_by`` (an advisor, say) it takes them in turn from each value, so one
    large group does not fill it alone.
    """
    ordered = clients.sort_values("client_key", kind="stable")
    if spread_by is not None and len(ordered) > limit:
        # round robin over the groups: each one's first client, then each one's second, ... until the sample is full
        turn = ordered.groupby(spread_by, dropna=False, sort=False).cumcount()
        picked = ordered.assign(_turn=turn.to_numpy()).sort_values(["_turn", spread_by, "client_key"], kind="stable").head(limit)
        ordered = picked.drop(columns="_turn").sort_values([spread_by, "client_key"], kind="stable")
    shown = ordered.head(limit)
    if clients.empty:
        return dg.MetadataValue.md("_no clients_")
    total = f"{len(shown):,} of {len(clients):,} clients" if len(shown) < len(clients) else f"{len(clients):,} client(s)"
    return dg.MetadataValue.md(f"{markdown_table(shown, limit=limit)}\n\n_{total}_")


def violations_result(
    violations: pd.DataFrame,
    *,
    counted: str,
    blocking_severity: dg.AssetCheckSeverity,
    next_step: str,
    sample_rows: int = SAMPLE_ROWS,
    affected_clients: pd.DataFrame | None = None,
    **fields: Any,
) -> dg.AssetCheckResult:
    """An integrity check's result: passed when ``violations`` is empty, else their count, a sample and the next step.

    ``counted`` names what one row of ``violations`` is (``rows_unbalanced``, ``files_rejected``,
    ``spellings_to_add``): the count is shown under that name, never as a bare "violations".
    ``affected_clients`` (one row per client: client_key, name, the field at fault), when the
    violations are about clients but are not one row per client (spellings, kinds of problem): shown
    as ``affected_clients`` (a sample, see :func:`client_sample`) and counted as ``clients_affected``.
    ``fields`` may name the check (``check_name``, ``asset_key``: for checks an asset yields itself);
    the rest is metadata.
    """
    naming = {k: fields.pop(k) for k in ("check_name", "asset_key") if k in fields}
    passed = violations.empty
    clients = (
        {}
        if passed or affected_clients is None
        else {"clients_affected": len(affected_clients), "affected_clients": client_sample(affected_clients, sample_rows)}
    )
    return dg.AssetCheckResult(
        passed=passed,
        severity=blocking_severity,
        metadata={
            counted: len(violations),
            **(
                {}
                if passed
                else {
                    "sample": dg.MetadataValue.md(markdown_table(violations, limit=sample_rows)),
                    **clients,
                    "next_step": next_step,
                }
            ),
            **fields,
        },
        **naming,
    )
