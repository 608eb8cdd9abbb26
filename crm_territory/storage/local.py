"""CSV storage under the data folder, behind the ``io_manager`` and ``table_store`` keys."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from crm_territory.storage.csv_set import CsvTableSet
from crm_territory.storage.csv_tables import TableNotFoundError
from crm_territory.storage.table_set_io import RunLog, TableSetIOManager
from crm_territory.storage.table_store import PublishedRecord, TableStore


class LocalCsvIOManager(TableSetIOManager):
    """Each asset as ``<data_dir>/<layer>/<asset>.csv``, read back with the model's dtypes.

    A run's tables are staged under ``<data_dir>/.staging/<run_id>/`` and published together when it
    succeeds (``csv_set``).
    """

    @property
    def tables(self) -> CsvTableSet:
        return CsvTableSet(self.data_dir)

    def recover(self, log: RunLog) -> None:
        self.tables.recover(log.warning)

    def stage(self, table: str, frame: pd.DataFrame) -> dict[str, dg.RawMetadataValue]:
        self.tables.stage(self._run_id, table, frame)
        return {"path": dg.MetadataValue.path(str(self.tables.published.path_for(table)))}

    def storage_location(self, table: str) -> str:
        return self.tables.location

    def read_for_run(self, table: str, missing_ok: bool) -> pd.DataFrame | None:
        try:
            return self.tables.read_for_run(self._run_id, table)
        except TableNotFoundError:
            if missing_ok:
                return None
            raise

    def read_columns_for_run(self, table: str, columns: list[str]) -> pd.DataFrame:
        return self.tables.read_for_run(self._run_id, table, columns)

    def publish(self, log: RunLog) -> None:
        self.tables.publish(self._run_id, log.info)

    def discard(self, log: RunLog, why: str) -> None:
        self.tables.discard(self._run_id, log.error, why)


class LocalCsvTableStore(TableStore):
    data_dir: str

    def read_previous(self, table: str) -> pd.DataFrame | None:
        return CsvTableSet(self.data_dir).read_published_if_exists(table)

    def iter_previous(self, table: str, rows: int = 10_000, order_by: list[str] | None = None) -> Iterator[pd.DataFrame] | None:
        """Streamed from the published file (written in the asset's order: ``order_by`` is not needed here)."""
        tables = CsvTableSet(self.data_dir)
        if not tables.resolve(table).is_file():
            return None
        return tables.iter_published(table, rows)

    def location(self, table: str) -> str:
        return CsvTableSet(self.data_dir).location

    def published_by(self, table: str) -> PublishedRecord | None:
        tables = CsvTableSet(self.data_dir)
        run_id = tables.published_by(table)
        return None if run_id is None else PublishedRecord(run_id, str(tables.manifest_path))
