"""Where the app's tables come from: the published tables, through the storage back-ends the assets use.

CSV (``CRM_STORAGE=local``): the published set of the data folder (``CsvTableSet``, read under its shared publish
lock, so a run publishing meanwhile is seen whole or not at all). Snowflake (``CRM_STORAGE=snowflake``): the CORE and
RAW tables, read by ``storage.snowflake.read_table`` over ``connect_from_environment``. No copy, no loader of its own,
nothing written. No Streamlit here: the bench and the Snowflake test use it as it is; ``cache.py`` adds the caching.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from crm_territory.schemas import TABLES, AssignmentsPreview, empty_frame
from crm_territory.settings import Settings

# Every table a page may read: the app never reads raw_clients or the CRM snapshot (whole source records, not its
# business), and a read of any other table is refused.
APP_TABLES = (
    "client_dim",
    "territory_dim",
    "advisor_dim",
    "assignments_fact",
    "territory_rules",
    "client_dim_history",
    "assignments_fact_history",
    "assignments_preview",
    "quarantined_clients",
    "ingest_manifest",
    "client_matches",
    "crm_api_advisors",
)


class TableSource(ABC):
    """The published tables of one storage location, read-only."""

    candidate_path: Path | None = None  # the candidate rules file, where the app can see the data folder
    reference_dir: Path | None = None
    preview_time_limit_seconds: float = 120.0

    def read(self, table: str) -> pd.DataFrame:
        """The published ``table`` with the model's dtypes; an empty frame if it was never written."""
        if table not in APP_TABLES:
            raise ValueError(f"the analytics app does not read {table!r} (it reads {', '.join(APP_TABLES)})")
        return self._read(table)

    @abstractmethod
    def _read(self, table: str) -> pd.DataFrame: ...

    @abstractmethod
    def version(self) -> str:
        """Changes whenever a run publishes: the cache key of every read (so a new run is picked up)."""

    @abstractmethod
    def where(self) -> str:
        """Where the tables are, for the page footer (never a credential)."""


class CsvSource(TableSource):
    def __init__(self, data_dir: Path, preview_time_limit_seconds: float = 120.0):
        from crm_territory.storage.csv_set import CsvTableSet

        self.data_dir = Path(data_dir)
        self.tables = CsvTableSet(self.data_dir)
        self.candidate_path = self.data_dir / "rules" / "candidate" / "territory_rules.yaml"
        self.reference_dir = self.data_dir / "reference"
        self.preview_time_limit_seconds = preview_time_limit_seconds

    def _read(self, table: str) -> pd.DataFrame:
        from crm_territory.storage.csv_set import published_tables

        try:
            with published_tables(self.data_dir) as tables:
                frame = tables.read_published_if_exists(table)
        except PermissionError:
            # a data folder the app may read but not write (the shared lock is a file in it): read without the lock,
            # as the table store does; a publish is then seen per table, each file whole (renamed into place)
            frame = self.tables.read_published_if_exists(table)
        return empty_frame(TABLES[table].model) if frame is None else frame

    def version(self) -> str:
        # published.json names the run that published each table: a new publish rewrites it
        manifest = self.tables.manifest()
        return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]

    def published_run(self) -> tuple[str, str] | None:
        """(run id, published at) of the run that published client_dim."""
        entry = self.tables.manifest().get("client_dim")
        return (entry["run_id"], entry["published_at"]) if entry else None

    def where(self) -> str:
        return f"CSV tables in {self.data_dir}"


# What changes whenever a run publishes in Snowflake (where no manifest is kept): the newest change and the size of each
# history, and the sizes of the tables a run can change without touching a history. CORE only: the analyst role
# reads nothing in RAW (infra/terraform/grants_analyst.tf). A run that changes RAW alone is seen within the cache's ttl.
_SNOWFLAKE_VERSION_SQL = " UNION ALL ".join(
    f"SELECT '{table}', COUNT(*), {stamps} FROM {{db}}.CORE.{table}"
    for table, stamps in (
        ("ASSIGNMENTS_FACT_HISTORY", "MAX(VALID_FROM), MAX(VALID_TO)"),
        ("CLIENT_DIM_HISTORY", "MAX(VALID_FROM), MAX(VALID_TO)"),
        ("ASSIGNMENTS_PREVIEW", "NULL, NULL"),
        ("CLIENT_MATCHES", "NULL, NULL"),
        ("TERRITORY_RULES", "NULL, NULL"),
    )
)


class SnowflakeSource(TableSource):
    """The CORE and RAW tables of one database; ``connect`` gives a DB-API connection context (the environment's, or
    Streamlit in Snowflake's own session)."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], database: str):
        self.connect = connect
        self.database = database
        self.unreadable: set[str] = set()  # RAW tables this role may not read: their page parts say so

    def _read(self, table: str) -> pd.DataFrame:
        from crm_territory.storage.snowflake import read_table

        spec = TABLES[table]
        try:
            with self.connect() as connection:
                return read_table(connection, self.database, spec)
        except Exception:
            # A role without SELECT on a RAW table (the analyst's) does not see it: SHOW TABLES leaves it out, or the
            # schema is not usable. The page shows what CORE gives and names the grant; a CORE table must be there.
            if spec.warehouse_schema != "RAW":
                raise
            self.unreadable.add(table)
            return empty_frame(spec.model)

    def version(self) -> str:
        with self.connect() as connection:
            cursor = connection.cursor()
            cursor.execute(_SNOWFLAKE_VERSION_SQL.format(db=self.database))
            rows = sorted(cursor.fetchall(), key=lambda row: str(row[0]))
        return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]

    def where(self) -> str:
        return f"Snowflake database {self.database} (schemas CORE and RAW)"


def streamlit_in_snowflake() -> TableSource | None:
    """Inside Streamlit in Snowflake: the app's own session (its owner's role, its database), else None.

    There is no environment to read there; Snowpark's active session is the connection. Outside Snowflake the import
    fails (Snowpark is not a dependency) and None is returned.
    """
    try:
        from snowflake.snowpark.context import get_active_session  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None
    try:
        session = get_active_session()
    except Exception:  # Snowpark installed, but no session: not inside Snowflake
        return None
    connection = session.connection
    return SnowflakeSource(lambda: nullcontext(connection), str(session.get_current_database()).strip('"'))


def source_from_environment() -> TableSource:
    """The tables ``Settings.from_env()`` points at: CSV under CRM_DATA_DIR, or Snowflake with CRM_STORAGE=snowflake
    (or the app's own session inside Streamlit in Snowflake)."""
    inside = streamlit_in_snowflake()
    if inside is not None:
        return inside
    settings = Settings.from_env()
    if settings.storage == "snowflake":
        from crm_territory.storage.snowflake import connect_from_environment

        return SnowflakeSource(connect_from_environment, os.environ["SNOWFLAKE_DATABASE"])
    return CsvSource(settings.data_dir, settings.preview_time_limit_seconds)


@dataclass(frozen=True)
class RulesPreview:
    """The per-client diff of the candidate rules and where it comes from."""

    changes: pd.DataFrame  # AssignmentsPreview rows
    status: str  # "published" (the last run's assignments_preview), "computed" (evaluated now), "none", "invalid", "failed"
    version: str | None = None
    message: str = ""


def rules_preview(source: TableSource, read: Callable[[str], pd.DataFrame]) -> RulesPreview:
    """The candidate's preview: the published ``assignments_preview`` when it is of the candidate file now in
    ``rules/candidate/`` (or when the app cannot see the data folder: Snowflake); else the same evaluation the asset
    runs (``logic.rules.preview.evaluate_candidate`` in a child process under the preview time limit), stored nowhere.
    Nothing is activated either way.
    """
    published = read("assignments_preview")
    published_version = str(published["candidate_version"].iloc[0]) if len(published) else None
    path = source.candidate_path
    if path is None:
        if published_version is None:
            return RulesPreview(published, "none", message="The last run published no preview (no candidate rules file).")
        return RulesPreview(published, "published", published_version)
    if not path.is_file():
        return RulesPreview(empty_frame(AssignmentsPreview), "none", message=f"No candidate rules file at {path}.")
    from crm_territory.logic.rules.loader import load_rules
    from crm_territory.logic.rules.model import RulesError

    try:
        version = load_rules(path).version
    except RulesError as exc:
        return RulesPreview(empty_frame(AssignmentsPreview), "invalid", message=str(exc))
    if version == published_version:
        return RulesPreview(published, "published", version)
    return _evaluate(source, read, path)


def _evaluate(source: TableSource, read: Callable[[str], pd.DataFrame], path: Path) -> RulesPreview:
    from crm_territory.logic.reference.reference_data import load_reference_data
    from crm_territory.logic.rules.preview import evaluate_candidate
    from crm_territory.logic.rules.time_limit import ChildFailed, TimeLimitExceeded, run_with_time_limit
    from crm_territory.resources.rules_files import check_rules

    assert source.reference_dir is not None
    roster = read("crm_api_advisors")
    args = (
        path,
        check_rules,
        load_reference_data(source.reference_dir),
        read("client_dim"),
        read("territory_dim"),
        read("assignments_fact"),
        roster if len(roster) else None,
    )
    empty = empty_frame(AssignmentsPreview)
    try:
        result = run_with_time_limit(evaluate_candidate, args, source.preview_time_limit_seconds)
    except TimeLimitExceeded:
        return RulesPreview(
            empty, "failed", message=f"Evaluating the candidate took over {source.preview_time_limit_seconds:g} s."
        )
    except ChildFailed as exc:
        return RulesPreview(empty, "failed", message=exc.error)
    if result.status != "previewed" or result.preview is None:
        return RulesPreview(empty, result.status, message=result.problem or "")
    return RulesPreview(result.preview.changes, "computed", result.version)
