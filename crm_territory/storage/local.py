"""CSV storage under the data folder, behind the ``io_manager`` and ``table_store`` keys."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from crm_territory.storage.csv_tables import CsvTables, TableNotFoundError
from crm_territory.storage.table_store import TableStore, input_missing_ok, spec_for
from crm_territory.storage.writer_lock import WriterLockedIOManager


class LocalCsvIOManager(WriterLockedIOManager):
    """Each asset as ``<data_dir>/<layer>/<asset>.csv``, written atomically, read back with the model's dtypes."""

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
