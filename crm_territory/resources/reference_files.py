"""The reference data (alias tables, owner roles) kept in the repo under ``<data_dir>/reference``."""

from pathlib import Path

import dagster as dg

from crm_territory.logic.reference.reference_data import ReferenceData, load_reference_data
from crm_territory.resources.fixed_at_load import FixedAtLoad


class ReferenceFiles(FixedAtLoad, dg.ConfigurableResource):
    data_dir: str

    def load(self) -> ReferenceData:
        return load_reference_data(Path(self.data_dir) / "reference")
