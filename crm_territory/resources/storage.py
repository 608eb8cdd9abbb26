"""Table storage behind two resource keys that every storage back-end serves identically.

``io_manager`` stores each asset's DataFrame and loads it for downstream assets. ``table_store``
reads the previous version of a table, which assets with state across runs need (the territory
registry, the incremental API snapshot): an unpartitioned asset cannot take itself as an input.
Both are chosen by CRM_STORAGE in ``storage_resources``; asset code never knows which one runs.
"""


from abc import ABC, abstractmethod

import dagster as dg
import pandas as pd

from crm_territory.schemas import TABLES
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables


def _table_name(asset_key: dg.AssetKey) -> str:
    name = asset_key.path[-1]
    if name not in TABLES:
        raise KeyError(f"no table layout for asset {asset_key.to_user_string()}; add it to crm_territory.schemas.TABLES")
    return name


class LocalCsvIOManager(dg.ConfigurableIOManager):
    """Each asset as ``<data_dir>/<layer>/<asset>.csv``, written atomically, read back with the model's dtypes."""

    data_dir: str

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        table = _table_name(context.asset_key)
        path = CsvTables(self.data_dir).write(table, obj)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        table = _table_name(context.asset_key)
        return CsvTables(self.data_dir).read(table)


class TableStore(dg.ConfigurableResource, ABC):
    """Reads the last stored version of a table (None if it was never written)."""

    @abstractmethod
    def read_previous(self, table: str) -> pd.DataFrame | None: ...


class LocalCsvTableStore(TableStore):
    data_dir: str

    def read_previous(self, table: str) -> pd.DataFrame | None:
        return CsvTables(self.data_dir).read_if_exists(table)


def storage_resources(settings: Settings) -> dict[str, object]:
    """The ``io_manager`` and ``table_store`` of the configured back-end (keys are the same for every back-end)."""
    if settings.storage == "local":
        data_dir = str(settings.data_dir)
        return {"io_manager": LocalCsvIOManager(data_dir=data_dir), "table_store": LocalCsvTableStore(data_dir=data_dir)}
    if settings.storage == "snowflake":
        from crm_territory.resources.snowflake_storage import snowflake_storage_resources  # the connector loads only when used

        return snowflake_storage_resources()
    raise ValueError(f"unknown storage back-end {settings.storage!r}")
