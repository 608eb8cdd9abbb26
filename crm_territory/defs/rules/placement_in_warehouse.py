"""The rules in force run where the data lives: ``client_placement_in_warehouse``, with CRM_STORAGE=snowflake only.

The rules file compiled to one Snowflake ``SELECT`` (``crm_territory.logic.rules.sql``) runs over THIS run's
client_dim inside the warehouse, through the IO manager's dagster-snowflake ``SnowflakeResource``; its rows become
this run's staged ``CORE.CLIENT_PLACEMENT_IN_WAREHOUSE__RUN_<run>`` (``CREATE TABLE ... AS``), published with the
run's other tables in one transaction, or dropped with them. No client row is fetched into this process.

Defined only when the tables are in Snowflake (``placement_in_warehouse()`` reads the settings as the definitions
load): the CSV storage has no warehouse, so its runs, checks and published tables are unchanged.
"""

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from crm_territory.logic.rules.sql import (
    NotCompilableError,
    PlacementDifferences,
    compile_rules,
    placement_differences,
    placement_table_sql,
    warehouse_columns,
)
from crm_territory.resources.rules_files import RulesFiles
from crm_territory.schemas import OWNERS, WAREHOUSE_TABLES
from crm_territory.settings import load_settings
from crm_territory.storage.table_store import STORAGE_LOCATION
from crm_territory.wiring.assets import TABLES_POOL, column_schema
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.guards import rules_in_force
from crm_territory.wiring.metadata import SAMPLE_ROWS, markdown_table

if TYPE_CHECKING:  # the connector is imported only where the storage is Snowflake
    from crm_territory.storage.snowflake import SnowflakeTablesIOManager

TABLE = "client_placement_in_warehouse"
SPEC = WAREHOUSE_TABLES[TABLE]
CHECK = "placements_match_pandas_engine"


def snowflake_io_manager(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> "SnowflakeTablesIOManager":
    from crm_territory.storage.snowflake import SnowflakeTablesIOManager

    io_manager = context.resources.io_manager
    if not isinstance(io_manager, SnowflakeTablesIOManager):
        raise dg.Failure(f"{TABLE} runs inside Snowflake: it needs CRM_STORAGE=snowflake's IO manager, not {io_manager!r}")
    return io_manager


def _not_compiled(context: dg.AssetExecutionContext, exc: NotCompilableError, client_dim: str) -> None:
    """Reported, never raised: a failed step would keep the whole run's tables (the pandas placement's too) unpublished."""
    what_to_do = (
        f"Nothing else is affected: assignments_fact (the pandas engine) placed this run's clients and the run's tables "
        f"are published. {SPEC.warehouse_name} keeps the rows of the last run that compiled (their rules_version says "
        f"which rules). To place in the warehouse again, change rule '{exc.rule_id}' ({exc.key}) as the message says, "
        "preview the candidate and activate it (docs/scaling.md, 'Faithful, or refused by name')."
    )
    context.log.error(f"{TABLE} was not computed in this run: {exc} {what_to_do}")
    context.log_event(
        dg.AssetObservation(
            asset_key=TABLE,
            metadata={
                "computed": "no: the rules file cannot be compiled to Snowflake SQL",
                "rule": exc.rule_id,
                "key": exc.key,
                "reason": exc.reason,
                "rules_file": exc.source,
                "client_dim_read": client_dim,
                "what_to_do": what_to_do,
            },
        )
    )


@dg.asset(
    name=TABLE,
    group_name=SPEC.group,
    kinds=set(SPEC.kinds),
    owners=list(OWNERS),
    code_version=SPEC.code_version,
    metadata={"layer": SPEC.layer, "grain": SPEC.grain, "dagster/column_schema": column_schema(SPEC.model)},
    pool=TABLES_POOL,
    deps=["client_dim", "territory_dim"],
    required_resource_keys={"io_manager", "rules_files"},  # the IO manager as a resource: a decorator-only key
    automation_condition=FOLLOW_UPSTREAM,
    output_required=False,  # skipped, not failed, when the rules cannot be compiled
    description=f"{SPEC.description}\n\n"
    "The rules in force (the same version territory_rules validated in this run) compiled to one Snowflake SELECT "
    "and run inside the warehouse over this run's client_dim (its staged copy, named by the IO manager), territory "
    "ids from this run's territory_dim; the result is created as this run's staged table (CREATE TABLE ... AS) and "
    "published with the run's other tables. Nothing is fetched but counts. The check placements_match_pandas_engine "
    "compares it, row by row inside the warehouse, with assignments_fact. A rules file the compiler refuses "
    "(NotCompilableError) skips this asset with the rule named; the pandas placement and the run are unaffected.",
)
def client_placement_in_warehouse(
    context: dg.AssetExecutionContext, territory_rules: pd.DataFrame
) -> Iterator[dg.MaterializeResult]:
    io_manager = snowflake_io_manager(context)
    rules_files = context.resources.rules_files
    assert isinstance(rules_files, RulesFiles), f"{TABLE} reads the rules through RulesFiles, not {rules_files!r}"
    rules = rules_in_force(rules_files, territory_rules)
    client_dim = io_manager.table_for_run("client_dim")
    territory_dim = io_manager.table_for_run("territory_dim")
    database = io_manager.snowflake.database
    target = f"{database}.{SPEC.warehouse_name}"
    if territory_dim is None:
        raise dg.Failure("territory_dim was written empty in this run: it always holds UNASSIGNED; re-run territory_dim")
    started = time.perf_counter()
    with io_manager.snowflake.get_connection() as connection:
        if client_dim is None:  # this run's book is empty: so is its placement
            context.log.info(f"{TABLE}: this run's client_dim has no rows, so the placement is empty")
            io_manager.stage_select(connection, TABLE, f"SELECT * FROM {target} WHERE FALSE", {})
            counts = pd.DataFrame(columns=["assignment_type", "assigned_by", "rows"])
        else:
            try:
                compiled = compile_rules(rules, client_dim, warehouse_columns(connection, client_dim), territory_dim)
            except NotCompilableError as exc:
                _not_compiled(context, exc, client_dim)
                return
            staging = io_manager.stage_select(connection, TABLE, placement_table_sql(compiled), compiled.params)
            counts = pd.DataFrame(columns=["assignment_type", "assigned_by", "rows"])
            if staging is not None:
                cursor = connection.cursor()
                cursor.execute(
                    'SELECT "ASSIGNMENT_TYPE", "ASSIGNED_BY", COUNT(*) FROM '
                    f"{database}.{SPEC.warehouse_schema}.{staging} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"
                )
                counts = pd.DataFrame(cursor.fetchall(), columns=["assignment_type", "assigned_by", "rows"])
    seconds = time.perf_counter() - started
    counts["rows"] = counts["rows"].astype(int)
    rows_of = counts.groupby("assignment_type")["rows"].sum()
    primary, secondary = int(rows_of.get("PRIMARY", 0)), int(rows_of.get("SECONDARY", 0))
    context.log.info(
        f"{TABLE}: {primary:,} clients placed inside Snowflake ({secondary:,} SECONDARY rows), rules {rules.version}, "
        f"from {client_dim or 'an empty client_dim'} in {seconds:.1f} s"
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(primary + secondary),
            "primary_rows": primary,
            "secondary_rows": secondary,
            "rules_version": rules.version,
            "placed_by": dg.MetadataValue.md(markdown_table(counts, limit=50)),
            "client_dim_read": client_dim or "none: this run's client_dim has no rows",
            "territory_dim_read": territory_dim,
            "seconds_in_warehouse": round(seconds, 3),
            "dagster/storage_kind": "snowflake",
            "table": target,
            STORAGE_LOCATION: io_manager.storage_location(TABLE),
            "published": "with the run's other tables, when the run succeeds",
        }
    )


@dg.asset_check(
    asset=TABLE,
    name=CHECK,
    additional_deps=["assignments_fact"],
    required_resource_keys={"io_manager"},
    blocking=False,  # the pandas placement stays the reference: a disagreement must not hold back the run's tables
    description="The warehouse placement equals the pandas engine's (this run's assignments_fact), row by row, compared "
    "inside Snowflake: the same (client_key, territory_id, assignment_type) rows with the same assigned_by, "
    "segment_rule, rules_version and pinned advisor. ERROR, with a sample of the differences, when it does not.",
)
def placements_match_pandas_engine(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    io_manager = snowflake_io_manager(context)
    placement = io_manager.table_for_run(TABLE)
    fact = io_manager.table_for_run("assignments_fact")
    fact_origin = (
        "this run's assignments_fact"
        if fact is None or "__RUN_" in fact
        else "the published assignments_fact (this run did not write one: a difference may be a book or rules changed since)"
    )
    with io_manager.snowflake.get_connection() as connection:
        if placement is None or fact is None:
            found = _one_side_empty(connection, placement, fact)
        else:
            found = placement_differences(connection, placement, fact, sample_rows=SAMPLE_ROWS)
    passed = found.differing_rows == 0
    metadata: dict[str, dg.RawMetadataValue] = {
        "warehouse_rows": found.warehouse_rows,
        "assignments_fact_rows": found.fact_rows,
        "differing_rows": found.differing_rows,
        "compared_with": fact_origin,
        "warehouse_placement_read": placement or "none: staged with no rows",
        "assignments_fact_read": fact or "none: staged with no rows",
    }
    if not passed:
        context.log.error(f"{CHECK}: {found.differing_rows:,} row(s) differ between {TABLE} and assignments_fact")
        metadata |= {
            "differences": dg.MetadataValue.md(markdown_table(found.by_difference, limit=20)),
            "sample": dg.MetadataValue.md(markdown_table(found.sample, limit=SAMPLE_ROWS)),
            "next_step": "The pandas engine is the reference: assignments_fact is what the run published for placement. "
            "Reproduce on this book with crm_territory.logic.rules.sql.place_in_warehouse and engine.evaluate, add the "
            "case to crm_territory_tests/unit/test_rules_sql.py, and fix the compiler, or make it refuse the construct "
            "(NotCompilableError) until it is fixed. If compared_with names the published fact, materialize "
            "assignments_fact in the same run first.",
        }
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


def _one_side_empty(connection, placement: str | None, fact: str | None) -> PlacementDifferences:
    """``placement_differences`` when a side was staged with no rows: every row of the other side differs."""

    def rows(table: str | None) -> int:
        if table is None:
            return 0
        cursor = connection.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        count = cursor.fetchone()
        return int(count[0]) if count else 0

    warehouse_rows, fact_rows = rows(placement), rows(fact)
    side = "only in the warehouse placement" if warehouse_rows else "only in assignments_fact"
    differing = warehouse_rows + fact_rows
    by_difference = pd.DataFrame({"difference": [side], "rows": [differing]}) if differing else pd.DataFrame()
    return PlacementDifferences(warehouse_rows, fact_rows, differing, by_difference, pd.DataFrame())


@dg.definitions
def placement_in_warehouse() -> dg.Definitions:
    # read as the definitions load, like the storage itself: no warehouse, no warehouse asset
    if load_settings().storage != "snowflake":
        return dg.Definitions()
    return dg.Definitions(assets=[client_placement_in_warehouse], asset_checks=[placements_match_pandas_engine])
