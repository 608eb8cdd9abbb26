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

from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.logic.rules.analysis import Finding, analyse_rules, raise_on_errors
from crm_territory.logic.rules.loader import load_rules, parse_rules
from crm_territory.logic.rules.model import Rules, RulesError
from crm_territory.resources.fixed_at_load import FixedAtLoad
from crm_territory.schemas import ClientDim, columns_of, model_dtypes

# what rules may look at: every client_dim column; ranges only on its numeric ones
RULE_COLUMNS = set(columns_of(ClientDim))
NUMERIC_RULE_COLUMNS = {name for name, dtype in model_dtypes(ClientDim).items() if str(dtype) in ("float64", "Int64")}


def check_rules(rules: Rules, reference: ReferenceData) -> list[Finding]:
    """Static analysis; errors raise RulesError (naming key and reason), warnings are returned."""
    findings = analyse_rules(
        rules, columns=RULE_COLUMNS, regions=reference.regions, segments=reference.segments, numeric_columns=NUMERIC_RULE_COLUMNS
    )
    raise_on_errors(findings, rules.source)
    return findings


class RulesFiles(FixedAtLoad, dg.ConfigurableResource):
    data_dir: str
    preview_time_limit_seconds: float = 120.0
    """The most seconds a candidate's preview may take (CRM_PREVIEW_TIME_LIMIT_SECONDS; a run may set its own)."""

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
            raise RulesError(
                str(self.active_path), [("(document)", "the rules file is missing; restore it (data/rules/territory_rules.yaml)")]
            )
        return load_rules(self.active_path)

    def load_candidate(self) -> Rules | None:
        return load_rules(self.candidate_path) if self.candidate_path.is_file() else None

    def activate(self, expected_version: str, reference: ReferenceData, previewed_against: str) -> tuple[str, Path]:
        """Make the candidate the active rules, if it is exactly what was previewed, against the rules still active.

        The candidate's bytes are read once: those bytes are hashed, checked and written, so an edit
        racing with activation is either refused or not taken. Returns (previous active version,
        where it was archived). The swap is a rename in one folder.
        """

        def refuse(reason: str):
            return RulesError(str(self.candidate_path), [("(document)", reason)])

        if not self.candidate_path.is_file():
            raise refuse("there is no candidate rules file to activate")
        data = self.candidate_path.read_bytes()
        candidate = parse_rules(data.decode("utf-8"), str(self.candidate_path))
        if candidate.version != expected_version:
            raise refuse(
                f"the candidate is version {candidate.version}, not the previewed {expected_version}: "
                "it changed since the preview; materialize assignments_preview again and review it"
            )
        previous = self.load_active()
        if previous.version != previewed_against:
            raise refuse(
                f"the preview compared the candidate with rules {previewed_against}, but {previous.version} are active now; "
                "materialize assignments_preview again"
            )
        check_rules(candidate, reference)
        archive = self.folder / "archive" / f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}_{previous.version}.yaml"
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.active_path, archive)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".territory_rules.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, self.active_path)
        if self.candidate_path.is_file() and self.candidate_path.read_bytes() == data:
            self.candidate_path.unlink()  # an edit made meanwhile stays, as the next candidate
        return previous.version, archive
