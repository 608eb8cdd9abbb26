"""CSV storage under the data folder, behind the ``io_manager`` and ``table_store`` keys."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from crm_territory.storage.csv_tables import CsvTables, TableNotFoundError
from crm_territory.storage.table_store import TableStore, input_missing_ok, spec_for
from crm_territory.storage.writer_lock import DataFolderLock, lock_for_run


class LocalCsvIOManager(dg.ConfigurableIOManager):
    """Each asset as ``<data_dir>/<layer>/<asset>.csv``, written atomically, read back with the model's dtypes."""

    data_dir: str
    lock_wait_seconds: float = 300.0
    """How long a run waits for another run writing the same data folder before it gives up."""

    _lock: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._lock = DataFolderLock(self.data_dir, self.lock_wait_seconds)
        lock_for_run(self._lock, context)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        spec = spec_for(context.asset_key)
        path = CsvTables(self.data_dir).write(spec.name, obj)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        spec = spec_for(context.asset_key)
        try:
            return CsvTables(self.data_dir).read(spec.name)
        except TableNotFoundError:
            if input_missing_ok(context):
                return None
            raise


class LocalCsvTableStore(TableStore):
    data_dir: str

    def read_previous(self, table: str) -> pd.DataFrame | None:
        return CsvTables(self.data_dir).read_if_exists(table)
