"""The two storage resources every back-end serves under the same keys.

``io_manager`` stores each asset's DataFrame and loads it for the assets downstream: that is how a
table moves along the lineage graph. ``table_store`` reads the *previous* version of a table, which
assets that carry state across runs need (the territory registry, the incremental API snapshot, the
key registry of entity resolution, the histories): an unpartitioned asset cannot take itself as an
input, so this is the one mechanism for "what did the last run publish?".

An input declared with ``missing_ok_input()`` reads as ``None`` while its table was never written
(the drop job runs before anyone pulled the CRM API); any other missing input is an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import NamedTuple

import dagster as dg
import pandas as pd

from crm_territory.resources.fixed_at_load import FixedAtLoad
from crm_territory.schemas import TABLES, TableSpec

MISSING_OK = "crm/missing_ok"
# Where a materialization's table was stored (the data folder's resolved path; the Snowflake account, database and
# schema): the registry and history guards only believe what was published to the same place.
STORAGE_LOCATION = "crm/storage_location"


def missing_ok_input() -> dg.AssetIn:
    """An input that reads as None while its table was never written (instead of failing the step)."""
    return dg.AssetIn(metadata={MISSING_OK: True})


def input_missing_ok(context: dg.InputContext) -> bool:
    return bool((context.definition_metadata or {}).get(MISSING_OK))


def spec_for(asset_key: dg.AssetKey) -> TableSpec:
    name = asset_key.path[-1]
    if name not in TABLES:
        raise KeyError(f"no table spec for asset {asset_key.to_user_string()}; add it to crm_territory.schemas.TABLES")
    return TABLES[name]


class PublishedRecord(NamedTuple):
    """What a storage location itself records of a table's last publish: the run, and where that is written."""

    run_id: str
    record: str
    """The record, for a message: e.g. ``<data_dir>/published.json``."""


class TableStore(FixedAtLoad, dg.ConfigurableResource, ABC):
    """Reads the last stored version of a table (None if it was never written)."""

    @abstractmethod
    def read_previous(self, table: str) -> pd.DataFrame | None: ...

    def iter_previous(self, table: str, rows: int = 10_000, order_by: list[str] | None = None) -> Iterator[pd.DataFrame] | None:
        """The last stored version of ``table`` a chunk of about ``rows`` rows at a time (None if never written).

        For readers whose memory must not grow with the table (the write-back's apply). In stored order, or by
        ``order_by`` where the storage has no order of its own. This default reads the whole table; the
        back-ends stream.
        """
        frame = self.read_previous(table)
        if frame is None:
            return None
        if order_by:
            frame = frame.sort_values(order_by, kind="stable")
        return (frame.iloc[i : i + rows] for i in range(0, len(frame), rows))

    @abstractmethod
    def location(self, table: str) -> str:
        """Where ``table`` is stored, as the IO manager records it under ``STORAGE_LOCATION`` (no credentials)."""

    def published_by(self, table: str) -> PublishedRecord | None:
        """The run the storage itself records as having published ``table`` (None: no record, or it keeps none)."""
        return None
