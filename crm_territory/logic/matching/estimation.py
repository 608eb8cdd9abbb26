"""m estimated from the book: expectation-maximisation over the candidate pairs' comparison vectors.

Each candidate pair has, per field compared (the optional fields, the CRM's region, parent and advisor fields,
and the name's level: ``model.py``), a level (exact, close, different, or missing on either record). Fellegi–Sunter's mixture: a pair is a match with probability ``lambda``; given its class the
fields' levels are independent, with probabilities m (matches) and u' (non-matches among the candidates).
EM alternates the chance each pair is a match (E) and the m, u' and lambda those chances imply (M).

* Starting point and fallback: the priors (``fields.PRIORS`` or the comparisons file's). A field that too
  few pairs have on both records (``min_pairs``) is left out and keeps its prior; if EM does not converge
  within ``max_iterations`` every field keeps its prior; so does a field whose estimated match class does
  not agree on it more often than the non-match class (EM latched onto something else).
* Only m is kept. The u the score uses stays the book's (random pairs, per value for exact: fields.py):
  the candidates' non-matches were chosen by blocking (a shared first word, a shared tax id), so u' is
  not what two random records share. u' is estimated only so that it does not bias m.
* Vectorised: identical vectors are grouped and weighted by their counts. With 11 fields of 4 states
  there are at most 4^11 distinct vectors, in practice a few thousand whatever the number of pairs, so
  each iteration is a few small array operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crm_territory.logic.matching.fields import CLOSE, DIFFERENT, EXACT, Prior

LEVEL_ORDER = (DIFFERENT, CLOSE, EXACT)  # the level codes 0, 1, 2 of FieldEvidence.levels
FLOOR = 1e-6  # no probability is let reach 0: log2(m / u) must stay finite


@dataclass(frozen=True)
class Estimate:
    """m per field (estimated or the prior) and how it was obtained."""

    m: dict[str, Prior]
    source: dict[str, str]  # "estimated" | "prior"
    note: dict[str, str]  # why the prior was kept ("" when estimated)
    training_pairs: int  # candidate pairs with at least one estimated field on both records
    pairs_with_field: dict[str, int]
    iterations: int
    converged: bool
    match_share: float | None = None  # lambda among the training pairs
    u_candidates: dict[str, Prior] = field(default_factory=dict)


def estimate_m(
    levels: dict[str, np.ndarray],
    priors: dict[str, Prior],
    u_start: dict[str, dict[str, float]],
    max_iterations: int = 100,
    tolerance: float = 1e-5,
    min_pairs: int = 200,
) -> Estimate:
    """EM over the pairs' level codes (``levels``: per field, one code a pair; -1 missing)."""
    having = {f: int((codes >= 0).sum()) for f, codes in levels.items()}
    used = [f for f in levels if having[f] >= min_pairs]
    note = {
        f: f"too few pairs have it on both records ({having[f]:,} < {min_pairs:,}): kept the prior"
        for f in levels
        if f not in used
    }
    if not used:
        return Estimate({f: priors[f] for f in levels}, dict.fromkeys(levels, "prior"), note, 0, having, 0, False)

    codes = np.stack([levels[f].astype(np.int64) for f in used], axis=1)  # pairs x fields, -1..2
    codes = codes[(codes >= 0).any(axis=1)]
    # group identical vectors: a base-4 number per pair (state + 1), counted once per distinct value
    key = ((codes + 1) * (4 ** np.arange(len(used)))).sum(axis=1)
    keys, weight = np.unique(key, return_counts=True)
    vectors = (keys[:, None] // (4 ** np.arange(len(used)))) % 4 - 1  # distinct x fields, -1..2
    onehot = vectors[:, :, None] == np.arange(3)  # distinct x fields x level
    weight = weight.astype(float)

    m = np.array([[getattr(priors[f], level) for level in LEVEL_ORDER] for f in used])
    u = np.array([[max(u_start[f][level], FLOOR) for level in LEVEL_ORDER] for f in used])
    u /= u.sum(axis=1, keepdims=True)
    share = 0.5
    converged, iteration = False, 0
    while iteration < max_iterations:
        iteration += 1
        # E: log-likelihood of each distinct vector under each class (a missing field is a factor of 1)
        log_m = (onehot * np.log(m)[None]).sum(axis=(1, 2))
        log_u = (onehot * np.log(u)[None]).sum(axis=(1, 2))
        log_match, log_non = np.log(share) + log_m, np.log1p(-share) + log_u
        top = np.maximum(log_match, log_non)
        p_match = np.exp(log_match - top) / (np.exp(log_match - top) + np.exp(log_non - top))
        # M: the levels' shares in each class, weighted by how many pairs have the vector
        in_match, in_non = weight * p_match, weight * (1 - p_match)
        new_m = _normalised(np.einsum("k,kfl->fl", in_match, onehot))
        new_u = _normalised(np.einsum("k,kfl->fl", in_non, onehot))
        new_share = float(np.clip(in_match.sum() / weight.sum(), FLOOR, 1 - FLOOR))
        change = max(np.abs(new_m - m).max(), np.abs(new_u - u).max(), abs(new_share - share))
        m, u, share = new_m, new_u, new_share
        if change < tolerance:
            converged = True
            break

    out_m, source = {f: priors[f] for f in levels}, dict.fromkeys(levels, "prior")
    if not converged:
        note |= {f: f"EM did not converge in {max_iterations} iterations: kept the prior" for f in used}
    else:
        for i, f in enumerate(used):
            if m[i, 2] <= u[i, 2]:  # the "match" class agrees less than the other: not the matches EM found
                note[f] = "EM's match class does not agree on it more often than its non-match class: kept the prior"
                continue
            # Weights must rank the levels: exact worth more than close, close more than different (with the
            # book's u). A book whose candidates are mostly look-alike non-matches with near-identical values
            # (consecutive ids) drew EM to "close" as the match level: merging them all would follow.
            book = [max(u_start[f][level], FLOOR) for level in LEVEL_ORDER]
            ratios = m[i] / np.array(book)
            if not (ratios[2] > ratios[1] > ratios[0]):
                note[f] = (
                    "EM's estimate ranks the levels out of order (exact must outweigh close, close different): kept the prior"
                )
                continue
            out_m[f] = Prior(exact=float(m[i, 2]), close=float(m[i, 1]), different=float(m[i, 0]))
            source[f] = "estimated"
    return Estimate(
        out_m,
        source,
        note,
        int(len(codes)),
        having,
        iteration,
        converged,
        share,
        {f: Prior(exact=float(u[i, 2]), close=float(u[i, 1]), different=float(u[i, 0])) for i, f in enumerate(used)},
    )


def _normalised(counts: np.ndarray) -> np.ndarray:
    """Rows summing to 1, no entry below FLOOR (a level no pair of the class shows is rare, not impossible)."""
    counts = np.maximum(counts, 0)
    totals = counts.sum(axis=1, keepdims=True)
    probs = np.where(totals > 0, counts / np.where(totals > 0, totals, 1), 1 / counts.shape[1])
    probs = np.maximum(probs, FLOOR)
    return probs / probs.sum(axis=1, keepdims=True)


# The prior counts as this many pairs beside the analysts' must-links: 50 decisions outweigh it five to one.
DECISION_PRIOR_WEIGHT = 10


def m_from_decisions(
    levels: dict[str, np.ndarray], priors: dict[str, Prior], u_book: dict[str, dict[str, float]], min_pairs: int
) -> tuple[dict[str, Prior], dict[str, int], dict[str, str]]:
    """m from the analysts' must-link pairs (``levels``: per field, the level code of each must-link pair).

    Returns (m for the fields with at least ``min_pairs`` must-links having the field on both records, the
    count per field, why a field's decisions were not used). m is the share of the must-links at each
    level, with the prior counted as ``DECISION_PRIOR_WEIGHT`` pairs (no level is left at 0 by a small sample).
    Must-links are a biased sample: analysts write them where the matcher missed, so the fields disagree
    in them more often than in a random true pair; m of "different" comes out high, which makes a
    disagreement cost less, the cautious side.
    """
    counts = {f: int((codes >= 0).sum()) for f, codes in levels.items()}
    out, note = {}, {}
    for f, codes in levels.items():
        if counts[f] < min_pairs:
            continue
        seen = np.bincount(codes[codes >= 0].astype(np.int64), minlength=3).astype(float)  # different, close, exact
        prior = np.array([getattr(priors[f], level) for level in LEVEL_ORDER])
        m = np.maximum((seen + DECISION_PRIOR_WEIGHT * prior) / (counts[f] + DECISION_PRIOR_WEIGHT), FLOOR)
        m /= m.sum()
        ratios = m / np.array([max(u_book[f][level], FLOOR) for level in LEVEL_ORDER])
        if not (ratios[2] > ratios[1] > ratios[0]):
            note[f] = (
                f"the {counts[f]:,} must-link pairs having it rank the levels out of order "
                "(exact must outweigh close, close different): not used"
            )
            continue
        out[f] = Prior(exact=float(m[2]), close=float(m[1]), different=float(m[0]))
    return out, counts, note
