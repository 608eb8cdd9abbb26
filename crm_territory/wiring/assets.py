"""Asset decorator arguments from the table spec: name, group, owners, kinds, description, column schema, pool.

Every asset of the engine is a table of ``crm_territory.schemas.TABLES``; its decorator is
``@table_asset("client_dim", ...)`` (or ``table_out`` inside a multi-asset), and only what is
particular to the asset (checks, automation, extra inputs) is written at the asset.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg
import pandera.pandas as pa

from crm_territory.schemas import OWNERS, TABLES, TableSpec, model_dtypes

# Every asset that writes a table takes a slot in this pool: with the instance's pool limit of 1 and
# run granularity (infra/dagster.yaml, cli.LOCAL_INSTANCE_YAML), two runs never write the tables at once,
# while runs of other code locations and runs that write nothing (activate_rules_job) are not held up.
TABLES_POOL = "crm_tables"


def column_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The model's columns as Dagster shows them: name, pandas type, description, nullable/unique."""
    columns = model.to_schema().columns
    dtypes = model_dtypes(model)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type="string" if dtypes[name] is object else str(dtypes[name]),
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=bool(column.nullable), unique=bool(column.unique)),
            )
            for name, column in columns.items()
        ]
    )


def _attributes(spec: TableSpec, how: str | None) -> dict[str, Any]:
    description = spec.description + (f"\n\n{inspect.cleandoc(how)}" if how else "")
    return {
        "group_name": spec.group,
        "kinds": set(spec.kinds),
        "owners": list(OWNERS),
        "description": description,
        "code_version": spec.code_version,
        "metadata": {"layer": spec.layer, "grain": spec.grain, "dagster/column_schema": column_schema(spec.model)},
    }


def table_asset(table: str, how: str | None = None, **extra: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``@dg.asset`` for the table ``table``: its spec's attributes; ``how`` (or the function's docstring) says how it is built."""
    spec = TABLES[table]

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        return dg.asset(name=table, pool=TABLES_POOL, **_attributes(spec, how or fn.__doc__), **extra)(fn)

    return decorate


def table_out(table: str, how: str | None = None, **extra: Any) -> dg.AssetOut:
    """An ``AssetOut`` of a multi-asset for the table ``table``."""
    return dg.AssetOut(**_attributes(TABLES[table], how), **extra)
