"""The human match decisions kept in the repo: ``<data_dir>/matching/decisions.csv``."""

from pathlib import Path

import dagster as dg

from crm_territory.logic.matching.decisions import MatchDecisions, read_decisions
from crm_territory.resources.fixed_at_load import FixedAtLoad


class MatchDecisionsFile(FixedAtLoad, dg.ConfigurableResource):
    data_dir: str

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / "matching" / "decisions.csv"

    def load(self) -> MatchDecisions:
        return read_decisions(self.path)
