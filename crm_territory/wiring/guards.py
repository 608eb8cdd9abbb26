"""Guards: a stored table that vanished must not silently restart; the rules must not change under a run.

A stored table that is missing is refused only if rows of it were published *to the same storage location*
(the data folder; the Snowflake account, database and schema): one Dagster instance serves every folder
``CRM_DATA_DIR`` names, and a fresh folder must start cleanly however many runs wrote another one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dagster as dg
import pandas as pd

from crm_territory.logic.rules.model import Rules
from crm_territory.resources.rules_files import RulesFiles
from crm_territory.storage.csv_set import CsvTableSet
from crm_territory.storage.table_store import STORAGE_LOCATION, TableStore, spec_for


@dataclass(frozen=True)
class Publication:
    """A run that published a table to the storage location a run is about to write."""

    run_id: str
    rows: int | None
    """Rows it published; None when this instance never saw that run (the location's own record names it)."""
    record: str | None = None
    """Where the location itself records that publish (``published.json``); None when the instance is the witness."""


def _rows(materialization: dg.AssetMaterialization) -> int | None:
    row_count = materialization.metadata.get("dagster/row_count")
    # table_metadata records dagster/row_count as MetadataValue.int: its value is an int
    return None if row_count is None else cast(int, row_count.value)


def stored_at(metadata: Mapping[str, dg.MetadataValue], here: str) -> bool:
    """Whether a materialization's table was stored at ``here`` (a ``STORAGE_LOCATION`` value)."""
    recorded = metadata.get(STORAGE_LOCATION)
    if recorded is not None:
        return recorded.value == here
    # Materializations from before the location was recorded (this instance's runs of earlier versions) still say
    # where they wrote, in another form: a CSV table its file, <data_dir>/<layer>/<table>.csv ...
    path = metadata.get("path")
    if path is not None:
        return CsvTableSet(Path(str(path.value)).parents[1]).location == here
    # ... a Snowflake table DATABASE.SCHEMA.TABLE, without the account: same database and schema is taken as here
    table = metadata.get("table")
    if table is not None and here.startswith("snowflake:"):
        return here.endswith("/" + str(table.value).upper().rsplit(".", 1)[0])
    return False


def rows_published_by(instance: dg.DagsterInstance, asset_key: dg.AssetKey, run_id: str) -> int | None:
    """The rows ``run_id`` materialized of the asset, as this instance recorded them (None: it has no such record)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in reversed(records):
        event = record.event_log_entry.dagster_event
        materialization = record.event_log_entry.asset_materialization
        if event is not None and event.asset_key == asset_key and materialization is not None:
            return _rows(materialization)
    return None


def published_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, table_store: TableStore, table: str, name: str
) -> Any:
    """The value of metadata ``name`` on the materialization of the run that published ``table`` where
    ``table_store`` reads it (None: nobody published it, this instance never saw that run, or it recorded no such
    entry). What a run knows of the inputs the published table was computed from."""
    last = last_publication(instance, asset_key, table_store, table)
    if last is None:
        return None
    records = instance.get_records_for_run(last.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in reversed(records):
        event = record.event_log_entry.dagster_event
        materialization = record.event_log_entry.asset_materialization
        if event is not None and event.asset_key == asset_key and materialization is not None:
            entry = materialization.metadata.get(name)
            return entry.value if entry is not None else None
    return None


def _succeeded(instance: dg.DagsterInstance, run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids, statuses=[dg.DagsterRunStatus.SUCCESS]))
    return {run.run_id for run in runs}


def last_publication_here(instance: dg.DagsterInstance, asset_key: dg.AssetKey, here: str, page: int = 100) -> Publication | None:
    """The newest materialization of the asset that was published at ``here``, by the instance's records.

    Only a run that succeeded published its tables: a run with a failed step publishes none of them (the IO
    manager drops its staged set), although Dagster recorded a materialization for each step that finished.
    """
    cursor = None
    while True:
        found = instance.fetch_materializations(asset_key, limit=page, cursor=cursor)
        here_by_run = [
            (r.run_id, r.asset_materialization)
            for r in found.records
            if r.asset_materialization is not None and r.run_id and stored_at(r.asset_materialization.metadata, here)
        ]
        succeeded = _succeeded(instance, [run_id for run_id, _ in here_by_run])
        for run_id, materialization in here_by_run:  # newest first
            if run_id in succeeded:
                # no row count recorded: nothing known to lose (what the guard always assumed)
                return Publication(run_id, _rows(materialization) or 0)
        if not found.has_more:
            return None
        cursor = found.cursor


def last_publication(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, table_store: TableStore, table: str
) -> Publication | None:
    """Who last published ``table`` where ``table_store`` reads it, and how many rows; None if nobody did.

    The location's own record comes first (a data folder's ``published.json``): it lives with the tables, so it
    belongs to this location whatever instance runs, and it names a run that was killed after publishing too.
    Without it (Snowflake, or a folder whose outputs and record were all deleted) the witness is this instance's
    materializations recorded at the same location by runs that succeeded.
    """
    own = table_store.published_by(table)
    if own is not None:
        return Publication(own.run_id, rows_published_by(instance, asset_key, own.run_id), own.record)
    return last_publication_here(instance, asset_key, table_store.location(table))


def refuse_to_forget(context: dg.AssetExecutionContext, table_store: TableStore, what: str, override: str | None = None) -> None:
    """Fail when this asset's stored table is missing but rows of it were published to this same storage location."""
    table = spec_for(context.asset_key).name
    last = last_publication(context.instance, context.asset_key, table_store, table)
    if last is None or last.rows == 0:
        return  # never published here (a fresh folder or database), or published empty: nothing would be lost
    name = context.asset_key.to_user_string()
    how = f", or re-run with {override} to start afresh" if override else ""
    published = (
        f"published {last.rows} rows"
        if last.rows is not None
        else f"published its rows to {table_store.location(table)} (as {last.record} records; this Dagster instance never saw that run)"
    )
    raise dg.Failure(
        description=(
            f"The stored {name} ({what}) is empty or missing, but run {last.run_id[:8]} {published}. "
            f"Starting again would lose them. Restore the table (on Snowflake: Time Travel, e.g. CREATE TABLE ... CLONE ... "
            f"AT(OFFSET => -3600)){how}."
        )
    )


def rules_in_force(rules_files: RulesFiles, territory_rules: pd.DataFrame) -> Rules:
    """The active rules, and the same version territory_rules validated earlier in this run."""
    rules = rules_files.load_active()
    validated = set(territory_rules["rules_version"]) or {rules.version}
    if validated != {rules.version}:
        raise dg.Failure(
            f"The rules file changed during the run (validated {', '.join(sorted(validated))}, now {rules.version}). "
            "Re-run: territory_rules validates the file first."
        )
    return rules
