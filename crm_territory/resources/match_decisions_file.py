"""The matching files kept in the repo: the human decisions ``<data_dir>/matching/decisions.csv`` and the
comparisons ``<data_dir>/matching/comparisons.yaml`` (optional; missing: the built-in defaults)."""

from pathlib import Path

import dagster as dg

from crm_territory.logic.ingest.layouts import layout_source_systems
from crm_territory.logic.matching.comparisons import Comparisons, read_comparisons
from crm_territory.logic.matching.decisions import MatchDecisions, read_decisions
from crm_territory.resources.fixed_at_load import FixedAtLoad
from crm_territory.schemas import SOURCE_SYSTEMS


class MatchDecisionsFile(FixedAtLoad, dg.ConfigurableResource):
    data_dir: str

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / "matching" / "decisions.csv"

    def load(self) -> MatchDecisions:
        # a decision may name a record of any source: the built-in ones and every source layout's (data/sources/)
        return read_decisions(self.path, [*SOURCE_SYSTEMS, *layout_source_systems(Path(self.data_dir) / "sources")])

    @property
    def comparisons_path(self) -> Path:
        return Path(self.data_dir) / "matching" / "comparisons.yaml"

    def load_comparisons(self) -> Comparisons:
        """Which optional fields are compared and their m priors; ``ComparisonsError`` names each problem's key path."""
        return read_comparisons(self.comparisons_path)
