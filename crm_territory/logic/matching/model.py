"""The model in force (``match_model``): estimate m, or reuse the previous run's, and say which and why.

EM runs when there is no stored model, when the comparisons settings changed, when the fields the book
has changed, or when the number of records having a field moved by more than
``re_estimate_when_records_change_by`` (10%) since the model was estimated. Otherwise the stored m is
reused: a book that grew by a few records says nothing new about how its duplicates differ, and the
re-run stays as cheap as before. u is always the current book's (its value frequencies).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_territory.logic.matching.comparisons import Comparisons
from crm_territory.logic.matching.estimation import estimate_m, m_from_decisions
from crm_territory.logic.matching.fields import CLOSE, DIFFERENT, EXACT, FieldEvidence, FieldModel, Prior
from crm_territory.schemas import MatchModel, columns_of, empty_frame

LEVELS = (EXACT, CLOSE, DIFFERENT)


@dataclass(frozen=True)
class FittedModel:
    model: FieldModel
    table: pd.DataFrame  # MatchModel
    re_estimated: bool
    reason: str


def model_version(model: FieldModel) -> str:
    """A hash of the parameters: fields, m per level (to 6 digits), points per bit and cap."""
    params = {
        "m": {f: [round(getattr(p, level), 6) for level in LEVELS] for f, p in sorted(model.m.items())},
        "points_per_bit": model.points_per_bit,
        "max_bits": model.max_bits,
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def fit_model(
    evidence: FieldEvidence,
    levels: dict[str, np.ndarray],
    comparisons: Comparisons,
    previous: pd.DataFrame | None,
    now: pd.Timestamp,
    decided: dict[str, np.ndarray] | None = None,
) -> FittedModel:
    """m for the fields ``evidence`` compares: reused from ``previous`` (match_model) or estimated from ``levels``
    (the candidate pairs', by EM) and ``decided`` (the analysts' must-link pairs' levels: they win for a field
    at least ``min_decisions`` of them have)."""
    fields = list(evidence.present)
    having = evidence.records_with_field
    priors = {f: comparisons.priors[f] for f in fields}
    settings = comparisons.estimation
    decided = decided or {}
    decision_pairs = {f: int((decided[f] >= 0).sum()) if f in decided else 0 for f in fields}
    reuse, reason = _reusable(previous, fields, having, comparisons, decision_pairs)
    if reuse is not None:
        prev = reuse.set_index(["field", "level"])
        m = {f: Prior(**{lv: float(prev.loc[(f, lv), "m"]) for lv in LEVELS}) for f in fields}
        model = FieldModel(m, comparisons.points_per_bit, comparisons.max_bits)
        first = reuse.groupby("field").first()
        info = {
            f: {
                "source": first.loc[f, "m_source"],
                "note": first.loc[f, "m_note"],
                "records": int(first.loc[f, "records_with_field"]),
                "pairs": int(first.loc[f, "pairs_with_field"]),
                "decisions": int(first.loc[f, "decision_pairs"]) if "decision_pairs" in first.columns else 0,
            }
            for f in fields
        }
        run = {
            "training_pairs": int(reuse["training_pairs"].iloc[0]),
            "em_iterations": int(reuse["em_iterations"].iloc[0]),
            "em_converged": bool(reuse["em_converged"].iloc[0]),
            "estimated_at": pd.Timestamp(reuse["estimated_at"].iloc[0]),
        }
        return FittedModel(model, _table(evidence, model, priors, info, run, comparisons, False, reason), False, reason)

    pairs = {f: int((levels[f] >= 0).sum()) for f in fields}
    if settings.enabled:
        estimate = estimate_m(
            {f: levels[f] for f in fields}, priors, evidence.u, settings.max_iterations, settings.tolerance, settings.min_pairs
        )
        m, sources, notes = dict(estimate.m), dict(estimate.source), dict(estimate.note)
        from_humans, _, refused = m_from_decisions(
            {f: decided[f] for f in fields if f in decided}, priors, evidence.u, settings.min_decisions
        )
        for f, human_m in from_humans.items():
            m[f], sources[f] = human_m, "human decisions"
            notes[f] = f"from {decision_pairs[f]:,} must-link pairs in the decisions file (EM's: {sources_note(estimate, f)})"
        notes |= refused
        run = {
            "training_pairs": estimate.training_pairs,
            "em_iterations": estimate.iterations,
            "em_converged": estimate.converged,
            "estimated_at": now,
        }
    else:
        m, sources = priors, dict.fromkeys(fields, "prior")
        notes = dict.fromkeys(fields, "estimation is off in the comparisons file")
        run = {"training_pairs": 0, "em_iterations": 0, "em_converged": False, "estimated_at": now}
    model = FieldModel(m, comparisons.points_per_bit, comparisons.max_bits)
    info = {
        f: {"source": sources[f], "note": notes.get(f), "records": having[f], "pairs": pairs[f], "decisions": decision_pairs[f]}
        for f in fields
    }
    return FittedModel(model, _table(evidence, model, priors, info, run, comparisons, True, reason), True, reason)


def sources_note(estimate, f: str) -> str:
    """What EM made of a field, in a few words, for the note of an m the decisions set."""
    if estimate.source.get(f) == "estimated":
        return f"exact {estimate.m[f].exact:.3f}"
    return "kept the prior"


def _reusable(
    previous: pd.DataFrame | None,
    fields: list[str],
    having: dict[str, int],
    comparisons: Comparisons,
    decision_pairs: dict[str, int],
) -> tuple[pd.DataFrame | None, str]:
    """(the previous model when it can be reused, why it is reused or why m is estimated again)."""
    if previous is None or previous.empty:
        return None, "no match_model stored yet: first estimate"
    before = previous["comparisons_version"].iloc[0]
    if before != comparisons.version:
        return None, f"the comparisons settings changed (version {before} -> {comparisons.version})"
    stored = sorted(set(previous["field"]))
    if stored != sorted(fields):
        return None, f"the fields the book has changed ({', '.join(stored)} -> {', '.join(sorted(fields))})"
    limit = comparisons.estimation.re_estimate_when_records_change_by
    was = previous.groupby("field")["records_with_field"].first()
    change = {f: abs(having[f] - int(was[f])) / max(int(was[f]), 1) for f in fields}
    moved = [f for f in fields if change[f] > limit]
    if moved:
        return None, "; ".join(
            f"records having {f} changed by {change[f]:.0%} ({int(was[f]):,} -> {having[f]:,}), more than {limit:.0%}"
            for f in moved
        )
    if "decision_pairs" in previous.columns:
        decided_before = previous.groupby("field")["decision_pairs"].first().fillna(0)
    else:  # a model stored before m could come from the decisions: it used none
        decided_before = pd.Series(0, index=fields)
    least = comparisons.estimation.min_decisions
    # new must-links matter when they (or the ones before) are enough to set m
    changed = [
        f
        for f in fields
        if int(decided_before[f]) != decision_pairs[f] and max(int(decided_before[f]), decision_pairs[f]) >= least
    ]
    if changed:
        return None, "; ".join(
            f"the must-link pairs having {f} changed ({int(decided_before[f]):,} -> {decision_pairs[f]:,})" for f in changed
        )
    at = pd.Timestamp(previous["estimated_at"].iloc[0])
    return previous, (
        f"reused the model estimated at {at:%Y-%m-%d %H:%M} UTC: same comparisons, and the records having each field "
        f"changed by at most {max(change.values()):.0%} (re-estimated beyond {limit:.0%})"
    )


def _table(evidence, model, priors, info, run, comparisons, re_estimated, reason) -> pd.DataFrame:
    version = model_version(model)
    rows = []
    for f in evidence.present:
        for level in LEVELS:
            m, u = getattr(model.m[f], level), evidence.u[f][level]
            bits = min(float(np.log2(m / u)), model.max_bits)
            rows.append(
                {
                    "field": f,
                    "level": level,
                    "m": m,
                    "m_prior": getattr(priors[f], level),
                    "m_source": info[f]["source"],
                    "m_note": info[f]["note"] if isinstance(info[f]["note"], str) and info[f]["note"] else None,
                    "u": u,
                    "bits": round(bits, 4),
                    "points": round(bits * model.points_per_bit, 2),
                    "records_with_field": info[f]["records"],
                    "pairs_with_field": info[f]["pairs"],
                    "decision_pairs": info[f]["decisions"],
                    **run,
                    "model_version": version,
                    "comparisons_version": comparisons.version,
                    "re_estimated": re_estimated,
                    "reason": reason,
                }
            )
    if not rows:
        return empty_frame(MatchModel)
    out = pd.DataFrame(rows)
    out["estimated_at"] = pd.to_datetime(out["estimated_at"], utc=True).astype("datetime64[ns, UTC]")
    for c in ("records_with_field", "pairs_with_field", "decision_pairs", "training_pairs", "em_iterations"):
        out[c] = out[c].astype("Int64")
    out["m_note"] = out["m_note"].astype(object).where(out["m_note"].notna(), None)
    return out[columns_of(MatchModel)]
