"""The model in force (``match_model``): estimate m, or reuse the previous run's, and say which and why.

What is estimated: m of every field the book has, by one expectation-maximisation over the candidate
pairs' comparison vectors (``estimation.py``):

* the optional fields (tax id, date of birth, postcode, domain, phone: three levels, ``fields.py``);
* the CRM's own fields, region, parent organisation, advisor e-mail and advisor domain (two levels: agree,
  disagree). Their hand-set points (``scoring.FIELD_WEIGHTS``) are the fallback: kept when EM cannot
  estimate a field (too few pairs, no convergence, an estimate where agreeing is not evidence for a match)
  or when ``crm_fields.estimate`` is off. An estimated agreement counts at most ``crm_fields.max_bits``
  (5 bits, 22.5 points): these are group attributes, shared by sibling organisations whose names already
  look alike, so two candidates agree on them far more often than two random records (the u the points
  use); the cap, measured on the generated books, keeps a shared parent from outweighing a region;
* the name comparison's level (same words, typo or abbreviation, other words), only so that EM's match
  class is the duplicates: the name keeps its word-by-word score.

The analysts' must-link pairs set m instead for a field enough of them have (``estimation.m_from_decisions``).

EM runs when there is no stored model, when the comparisons settings changed, when the fields the book
has changed, when the number of records having a field moved by more than
``re_estimate_when_records_change_by`` (10%), or when the must-link pairs that set m changed. Otherwise the
stored m is reused: a book that grew by a few records says nothing new about how its duplicates differ,
and the re-run stays as cheap as before. A reused model keeps its u too (per level, and the records having each
field, the denominator of an exact value's share), as Splink keeps a trained u: a pair's points then depend on
the pair and the model alone, so a run can score again only the pairs its changes touch (``incremental.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from crm_territory.logic.matching.comparisons import Comparisons
from crm_territory.logic.matching.estimation import FLOOR, estimate_m, m_from_decisions
from crm_territory.logic.matching.fields import CLOSE, DIFFERENT, EXACT, FieldModel, Prior
from crm_territory.logic.matching.scoring import (
    AGREE,
    DISAGREE,
    FIELD_WEIGHTS,
    NOT_COMPARED,
    SAME_WORDS,
    TYPO,
    FieldWeight,
    MatchFeatures,
)
from crm_territory.schemas import MatchModel, columns_of, empty_frame

LEVELS = (EXACT, CLOSE, DIFFERENT)
CRM_FIELDS = tuple(FIELD_WEIGHTS)  # region, parent_org, advisor_email, advisor_domain
CRM_LEVELS = {AGREE: EXACT, DISAGREE: DIFFERENT}  # the two levels of a CRM field, stored as EM's codes 2 and 0
NAME = "name"  # in EM only: its level tells EM which class is the duplicates

# EM's start for the CRM fields: the chance two records of one client agree (about 8% of true pairs differ
# on region in the generated books; parents and advisors are copied more faithfully). close never happens.
CRM_PRIORS: dict[str, Prior] = {
    "region": Prior(exact=0.92, close=FLOOR, different=0.08),
    "parent_org": Prior(exact=0.95, close=FLOOR, different=0.05),
    "advisor_email": Prior(exact=0.85, close=FLOOR, different=0.15),
    "advisor_domain": Prior(exact=0.95, close=FLOOR, different=0.05),
}
NAME_PRIOR = Prior(exact=0.7, close=0.2, different=0.1)
HAND_SET = "hand-set"


@dataclass(frozen=True)
class PairLevels:
    """What the model is fitted on: per field (optional, CRM, and the name), the level code of each candidate
    pair (2 exact or agree, 1 close, 0 different or disagree, -1 not on both records), u per level from the
    book, and how many records have the field."""

    levels: dict[str, np.ndarray]
    u: dict[str, dict[str, float]]
    records_with_field: dict[str, int]
    optional: tuple[str, ...] = ()  # the optional fields among them (the others: CRM fields and the name)


def pair_levels(matcher: MatchFeatures, optional_levels: dict[str, np.ndarray] | None, scored: pd.DataFrame) -> PairLevels:
    """The levels of the pairs ``scored`` (score_pairs' output) for the model: the optional fields' from
    ``optional_levels``, the CRM fields' from their agreement columns, the name's from name_difference."""
    evidence = matcher.fields
    optional = tuple(evidence.present) if evidence is not None else ()
    levels = {f: optional_levels[f] for f in optional} if optional_levels is not None else {}
    u = {f: evidence.u[f] for f in optional} if evidence is not None else {}
    having = {f: evidence.records_with_field[f] for f in optional} if evidence is not None else {}
    for f in CRM_FIELDS:
        codes = matcher.codes[f]
        count = int((codes >= 0).sum())
        if not count:
            continue
        agreement = scored[f"{f}_agreement"].to_numpy()
        levels[f] = np.select([agreement == AGREE, agreement == DISAGREE], [2, 0], -1).astype(np.int8)
        shares = np.bincount(codes[codes >= 0]) / count
        agree = min(float((shares**2).sum()), 1 - FLOOR)
        u[f], having[f] = {EXACT: agree, CLOSE: FLOOR, DIFFERENT: 1 - agree}, count
    difference = scored["name_difference"].to_numpy()
    levels[NAME] = np.select([difference == SAME_WORDS, difference == TYPO, difference != NOT_COMPARED], [2, 1, 0], -1).astype(
        np.int8
    )
    u[NAME] = {EXACT: 1e-4, CLOSE: 1e-4, DIFFERENT: 1 - 2e-4}  # EM's start only: never turned into points
    return PairLevels(levels, u, having, optional)


@dataclass(frozen=True)
class FittedModel:
    model: FieldModel  # the optional fields' m
    weights: dict[str, FieldWeight]  # the CRM fields' points in force (estimated or hand-set)
    table: pd.DataFrame  # MatchModel
    re_estimated: bool
    reason: str
    sources: dict[str, str] = field(default_factory=dict)
    # A reused model's own statistics (u per level, records having each field), measured when it was estimated;
    # None when this run estimated it (the book's are the model's). Scoring uses them instead of the book's.
    u: dict[str, dict[str, float]] | None = None
    records_with_field: dict[str, int] | None = None


def model_version(model: FieldModel, weights: dict[str, FieldWeight]) -> str:
    """A hash of the parameters: fields, m per level (to 6 digits), the CRM fields' points, points per bit and cap."""
    params = {
        "m": {f: [round(getattr(p, level), 6) for level in LEVELS] for f, p in sorted(model.m.items())},
        "crm": {f: [round(w.agree, 2), round(w.disagree, 2)] for f, w in sorted(weights.items())},
        "points_per_bit": model.points_per_bit,
        "max_bits": model.max_bits,
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def crm_weight(m: Prior, u: dict[str, float], comparisons: Comparisons) -> FieldWeight:
    """The points of a CRM field's agreement (capped at crm_fields.max_bits) and disagreement, from m and u."""
    agree = min(float(np.log2(m.exact / u[EXACT])), comparisons.crm_max_bits)
    disagree = max(float(np.log2(m.different / u[DIFFERENT])), -comparisons.max_bits)
    return FieldWeight(
        agree=round(agree * comparisons.points_per_bit, 2), disagree=round(disagree * comparisons.points_per_bit, 2)
    )


def fit_model(
    pairs: PairLevels,
    comparisons: Comparisons,
    previous: pd.DataFrame | None,
    now: pd.Timestamp,
    decided: dict[str, np.ndarray] | None = None,
) -> FittedModel:
    """m for the fields of ``pairs``: reused from ``previous`` (match_model) or estimated from the candidate
    pairs' levels (EM) and ``decided`` (the analysts' must-link pairs' levels: they win for a field at least
    ``min_decisions`` of them have)."""
    optional = list(pairs.optional)
    crm = [f for f in CRM_FIELDS if f in pairs.levels]
    fields = optional + crm
    having = pairs.records_with_field
    priors = {f: comparisons.priors[f] for f in optional} | {f: CRM_PRIORS[f] for f in crm}
    settings = comparisons.estimation
    decided = decided or {}
    decision_pairs = {f: int((decided[f] >= 0).sum()) if f in decided else 0 for f in fields}
    reuse, reason = _reusable(previous, fields, having, comparisons, decision_pairs)
    if reuse is not None:
        first = reuse.groupby("field").first()
        m = {f: _stored_m(reuse, f) for f in fields}
        sources = {f: str(first.loc[f, "m_source"]) for f in fields}
        info = {
            f: {
                "source": sources[f],
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
        # The model keeps the u it was estimated with, as it keeps m: measured again, u would move with every record
        # added anywhere (value shares, a random sample of pairs), and every pair's points with it.
        stored_u = {f: _stored_u(reuse, f) for f in fields}
        fitted = _fitted(replace(pairs, u=pairs.u | stored_u), m, sources, info, run, priors, comparisons, False, reason)
        return replace(
            fitted,
            u={f: stored_u[f] for f in optional},
            records_with_field={f: int(first.loc[f, "records_with_field"]) for f in optional},
        )

    counted = {f: int((pairs.levels[f] >= 0).sum()) for f in fields}
    estimated = [f for f in optional if settings.enabled] + [f for f in crm if settings.enabled and comparisons.crm_estimate]
    if estimated:
        em_levels = {f: pairs.levels[f] for f in estimated} | {NAME: pairs.levels[NAME]}
        estimate = estimate_m(
            em_levels,
            {f: priors[f] for f in estimated} | {NAME: NAME_PRIOR},
            {f: pairs.u[f] for f in estimated} | {NAME: pairs.u[NAME]},
            settings.max_iterations,
            settings.tolerance,
            settings.min_pairs,
        )
        m = {f: estimate.m[f] for f in estimated}
        sources = {f: estimate.source[f] for f in estimated}
        notes = {f: estimate.note[f] for f in estimated if f in estimate.note}
        from_humans, _, refused = m_from_decisions(
            {f: decided[f] for f in estimated if f in decided}, priors, pairs.u, settings.min_decisions
        )
        for f, human_m in from_humans.items():
            was = f"exact {m[f].exact:.3f}" if sources[f] == "estimated" else "kept the prior"
            m[f], sources[f] = human_m, "human decisions"
            notes[f] = f"from {decision_pairs[f]:,} must-link pairs in the decisions file (EM's: {was})"
        notes |= refused
        run = {
            "training_pairs": estimate.training_pairs,
            "em_iterations": estimate.iterations,
            "em_converged": estimate.converged,
            "estimated_at": now,
        }
    else:
        m, sources, notes = {}, {}, {}
        run = {"training_pairs": 0, "em_iterations": 0, "em_converged": False, "estimated_at": now}
    for f in fields:
        if f not in estimated:
            m[f], sources[f] = priors[f], "prior"
            notes[f] = "estimation is off in the comparisons file"
    for f in crm:  # a CRM field EM could not estimate keeps the hand-set points
        if sources[f] == "prior":
            sources[f] = HAND_SET
            notes[f] = (notes.get(f) or "").replace("kept the prior", "kept the hand-set points")
    info = {
        f: {"source": sources[f], "note": notes.get(f), "records": having[f], "pairs": counted[f], "decisions": decision_pairs[f]}
        for f in fields
    }
    return _fitted(pairs, m, sources, info, run, priors, comparisons, True, reason)


def _stored_m(stored: pd.DataFrame, f: str) -> Prior:
    rows = stored[stored["field"] == f].set_index("level")["m"]
    if AGREE in rows.index:  # a CRM field: two levels
        return Prior(exact=float(rows[AGREE]), close=FLOOR, different=float(rows[DISAGREE]))
    return Prior(**{level: float(rows[level]) for level in LEVELS})


def _stored_u(stored: pd.DataFrame, f: str) -> dict[str, float]:
    rows = stored[stored["field"] == f].set_index("level")["u"]
    if AGREE in rows.index:  # a CRM field: two levels
        return {EXACT: float(rows[AGREE]), CLOSE: FLOOR, DIFFERENT: float(rows[DISAGREE])}
    return {level: float(rows[level]) for level in LEVELS}


def _fitted(pairs, m, sources, info, run, priors, comparisons, re_estimated, reason) -> FittedModel:
    optional = [f for f in pairs.optional]
    model = FieldModel({f: m[f] for f in optional}, comparisons.points_per_bit, comparisons.max_bits)
    weights = dict(FIELD_WEIGHTS)
    for f in CRM_FIELDS:
        if f in m and sources[f] != HAND_SET:
            weights[f] = crm_weight(m[f], pairs.u[f], comparisons)
    version = model_version(model, weights)
    rows = []
    for f in optional:
        for level in LEVELS:
            mf, u = getattr(m[f], level), pairs.u[f][level]
            bits = min(float(np.log2(mf / u)), model.max_bits)
            rows.append(_row(f, level, mf, getattr(priors[f], level), u, bits, bits * model.points_per_bit, info[f]))
    for f in CRM_FIELDS:
        if f not in m:
            continue
        for level, code in CRM_LEVELS.items():
            points = weights[f].agree if level == AGREE else weights[f].disagree
            mf, u = getattr(m[f], code), pairs.u[f][code]
            rows.append(_row(f, level, mf, getattr(priors[f], code), u, points / model.points_per_bit, points, info[f]))
    if not rows:
        return FittedModel(model, weights, empty_frame(MatchModel), re_estimated, reason, sources)
    out = pd.DataFrame(
        [
            r
            | run
            | {
                "model_version": version,
                "comparisons_version": comparisons.version,
                "re_estimated": re_estimated,
                "reason": reason,
            }
            for r in rows
        ]
    )
    out["estimated_at"] = pd.to_datetime(out["estimated_at"], utc=True).astype("datetime64[ns, UTC]")
    for c in ("records_with_field", "pairs_with_field", "decision_pairs", "training_pairs", "em_iterations"):
        out[c] = out[c].astype("Int64")
    out["m_note"] = out["m_note"].astype(object).where(out["m_note"].notna(), None)
    return FittedModel(model, weights, out[columns_of(MatchModel)], re_estimated, reason, sources)


def _row(f, level, m, prior, u, bits, points, info) -> dict:
    note = info["note"]
    return {
        "field": f,
        "level": level,
        "m": m,
        "m_prior": prior,
        "m_source": info["source"],
        "m_note": note if isinstance(note, str) and note else None,
        "u": u,
        "bits": round(bits, 4),
        "points": round(points, 2),
        "records_with_field": info["records"],
        "pairs_with_field": info["pairs"],
        "decision_pairs": info["decisions"],
    }


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
