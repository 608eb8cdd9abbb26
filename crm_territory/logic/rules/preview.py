"""What a candidate rules file would change, per client, before anything moves.

Compares the current PRIMARY assignments with those the candidate gives (``star.build_star`` run
on the same clients, territories and advisors, nothing stored): one row per client whose territory
or advisor would change, plus counts per territory and per advisor and the load balance before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm_territory.logic.placement.pipeline import Star, build_star
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.logic.rules.loader import load_rules
from crm_territory.logic.rules.model import Rules, RulesError
from crm_territory.schemas import AssignmentsPreview, conform, empty_frame


@dataclass(frozen=True)
class Preview:
    changes: pd.DataFrame  # AssignmentsPreview rows
    territories: pd.DataFrame  # territory_id, clients_before, clients_after, change
    advisors: pd.DataFrame  # advisor_email, clients_before, clients_after, capacity, utilisation_before, utilisation_after
    new_territories: pd.DataFrame  # territories the candidate would issue
    balance: pd.DataFrame  # measure, before, after


def _current_primary(fact: pd.DataFrame) -> pd.DataFrame:
    primary = fact[(fact["assignment_type"] == "PRIMARY") & fact["is_current"]]
    return primary.set_index("client_key")[["territory_id", "primary_advisor_email", "assigned_by"]]


def _counts(before: pd.Series, after: pd.Series, name: str) -> pd.DataFrame:
    table = pd.concat([before.value_counts().rename("clients_before"), after.value_counts().rename("clients_after")], axis=1)
    table = table.fillna(0).astype(int).rename_axis(name).reset_index()
    table["change"] = table["clients_after"] - table["clients_before"]
    return table.sort_values(name).reset_index(drop=True)


def preview(
    current_fact: pd.DataFrame, candidate: Star, advisor_dim: pd.DataFrame | None, current_territories: pd.DataFrame
) -> Preview:
    before = _current_primary(current_fact)
    after = _current_primary(candidate.assignments.fact)
    both = before.join(after, how="outer", lsuffix="_before", rsuffix="_after")
    territory_moves = both["territory_id_before"].ne(both["territory_id_after"])
    advisor_moves = both["primary_advisor_email_before"].fillna("").ne(both["primary_advisor_email_after"].fillna(""))
    changed = both[territory_moves | advisor_moves]
    change = np.select(
        [territory_moves[changed.index] & advisor_moves[changed.index], territory_moves[changed.index]],
        ["territory and advisor", "territory"],
        "advisor",
    )
    changes = (
        pd.DataFrame(
            {
                "client_key": changed.index,
                "territory_before": changed["territory_id_before"].to_numpy(),
                "territory_after": changed["territory_id_after"].to_numpy(),
                "advisor_before": changed["primary_advisor_email_before"].to_numpy(),
                "advisor_after": changed["primary_advisor_email_after"].to_numpy(),
                "assigned_by_after": changed["assigned_by_after"].to_numpy(),
                "change": change,
                "candidate_version": candidate.placement.rules_version,
            }
        )
        if len(changed)
        else empty_frame(AssignmentsPreview)
    )

    territories = _counts(before["territory_id"], after["territory_id"], "territory_id")
    advisors = _counts(before["primary_advisor_email"].dropna(), after["primary_advisor_email"].dropna(), "advisor_email")
    capacity = (
        advisor_dim.set_index("advisor_email")["capacity"].astype(float)
        if advisor_dim is not None and len(advisor_dim)
        else pd.Series(dtype=float)
    )
    advisors["capacity"] = advisors["advisor_email"].map(capacity)
    advisors["utilisation_before"] = advisors["clients_before"] / advisors["capacity"]
    advisors["utilisation_after"] = advisors["clients_after"] / advisors["capacity"]

    def spread(column: str) -> tuple[float, float]:
        values = advisors[column].replace([np.inf, -np.inf], np.nan).dropna()
        return (float(values.max()) if len(values) else float("nan"), float(values.std()) if len(values) > 1 else 0.0)

    (max_before, std_before), (max_after, std_after) = spread("utilisation_before"), spread("utilisation_after")
    balance = pd.DataFrame(
        {
            "measure": ["max advisor utilisation", "std of advisor utilisation", "advisors over capacity"],
            "before": [max_before, std_before, int((advisors["utilisation_before"] > 1).sum())],
            "after": [max_after, std_after, int((advisors["utilisation_after"] > 1).sum())],
        }
    )
    new_ids = ~candidate.territory_dim["territory_id"].isin(current_territories["territory_id"])
    return Preview(
        changes=conform(changes, AssignmentsPreview).sort_values("client_key").reset_index(drop=True),
        territories=territories,
        advisors=advisors.sort_values("utilisation_after", ascending=False).reset_index(drop=True),
        new_territories=candidate.territory_dim[new_ids][["territory_id", "region", "segment", "overlay", "owner_role"]],
        balance=balance,
    )


@dataclass(frozen=True)
class CandidatePreview:
    """What evaluating a candidate rules file gave: its preview, or why there is none."""

    status: str  # "previewed", "none" (no candidate file) or "invalid" (the candidate's rules are refused)
    version: str | None = None
    preview: Preview | None = None
    problem: str | None = None  # invalid: the RulesError's text
    analysis_warnings: int = 0
    secondary_rows_after: int = 0


def current_secondary_rows(fact: pd.DataFrame) -> int:
    return int(((fact["assignment_type"] == "SECONDARY") & fact["is_current"]).sum())


def evaluate_candidate(
    path: Path,
    check: Callable[[Rules, ReferenceData], Sequence[object]],
    reference: ReferenceData,
    client_dim: pd.DataFrame,
    territory_dim: pd.DataFrame,
    assignments_fact: pd.DataFrame,
    roster: pd.DataFrame | None,
) -> CandidatePreview:
    """Read, check and evaluate the candidate rules at ``path`` on the current book; nothing is stored.

    Everything the candidate's author controls happens in here (parsing, static analysis by
    ``check``, which raises on errors and returns the warnings, the engine, capacity), so that one
    time limit around this call bounds all of it (``assignments_preview`` runs it in a child process).
    """
    if not path.is_file():
        return CandidatePreview("none")
    try:
        candidate = load_rules(path)
        findings = check(candidate, reference)
        # advisors are re-translated onto the candidate's territories (a new territory gets its advisors too)
        star = build_star(client_dim, candidate, reference, previous_territories=territory_dim, roster=roster)
    except RulesError as exc:  # the engine raises it too, e.g. for a regular expression over its time budget
        return CandidatePreview("invalid", problem=str(exc))
    return CandidatePreview(
        "previewed",
        version=candidate.version,
        preview=preview(assignments_fact, star, star.advisor_dim, territory_dim),
        analysis_warnings=len(findings),
        secondary_rows_after=current_secondary_rows(star.assignments.fact),
    )
