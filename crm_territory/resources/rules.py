"""The territory rules files under ``<data_dir>/rules``: the active rules, a candidate, and activation.

``territory_rules.yaml`` is what runs. ``candidate/territory_rules.yaml`` is a proposed change: the
``assignments_preview`` asset shows what it would move, and nothing moves until someone activates
that exact version (``activate``), which archives the active file and puts the candidate in its place.
"""

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from crm_territory.logic.reference import ReferenceData
from crm_territory.logic.rules import Rules, RulesError, load_rules
from crm_territory.logic.rules_analysis import Finding, analyse_rules, raise_on_errors
from crm_territory.schemas import ClientDim, columns_of

# what rules may look at: every client_dim column
RULE_COLUMNS = set(columns_of(ClientDim))


def check_rules(rules: Rules, reference: ReferenceData) -> list[Finding]:
    """Static analysis; errors raise RulesError (naming key and reason), warnings are returned."""
    findings = analyse_rules(rules, columns=RULE_COLUMNS, regions=reference.regions, segments=reference.segments)
    raise_on_errors(findings, rules.source)
    return findings


class RulesFiles(dg.ConfigurableResource):
    data_dir: str

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / "rules"

    @property
    def active_path(self) -> Path:
        return self.folder / "territory_rules.yaml"

    @property
    def candidate_path(self) -> Path:
        return self.folder / "candidate" / "territory_rules.yaml"

    def load_active(self) -> Rules:
        if not self.active_path.is_file():
            raise RulesError(str(self.active_path), [("(document)", "the rules file is missing; restore it (data/rules/territory_rules.yaml)")])
        return load_rules(self.active_path)

    def load_candidate(self) -> Rules | None:
        return load_rules(self.candidate_path) if self.candidate_path.is_file() else None

    def activate(self, expected_version: str, reference: ReferenceData) -> tuple[str, Path]:
        """Make the candidate the active rules, if it is still the version that was previewed.

        Returns (previous active version, where it was archived). The swap is a rename in one folder.
        """
        candidate = self.load_candidate()
        if candidate is None:
            raise RulesError(str(self.candidate_path), [("(document)", "there is no candidate rules file to activate")])
        if candidate.version != expected_version:
            raise RulesError(
                str(self.candidate_path),
                [("(document)", f"the candidate is version {candidate.version}, not the previewed {expected_version}: "
                  "it changed since the preview; materialize assignments_preview again and review it")],
            )
        check_rules(candidate, reference)
        previous = self.load_active()
        archive = self.folder / "archive" / f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}_{previous.version}.yaml"
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.active_path, archive)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".territory_rules.", suffix=".tmp")
        os.close(fd)
        shutil.copyfile(self.candidate_path, tmp)
        os.replace(tmp, self.active_path)
        self.candidate_path.unlink()
        return previous.version, archive
