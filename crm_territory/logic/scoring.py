"""How alike two records are, in points an analyst can read back: name similarity plus field agreement.

score = name score (0-100: the better of rapidfuzz's ``ratio`` and ``token_sort_ratio`` on the
normalised names, so "Atlas Captial Partners" still scores ~96 and word order does not matter)
+ points for each other field both records fill in: the same canonical region, the same parent
organisation (compared like names, typos allowed), the same advisor, the same advisor e-mail domain
add a little; a different one takes a lot away (two records of one organisation rarely disagree on
where it is, which group it belongs to or who owns it).

A high score is not enough: names of sibling organisations score high too ("Veltaro Capital
Partners" / "Veltaro Wealth Partners" ~87, "Brompela Wealth Group" / "Groampela Wealth Group" ~93).
So the names are also compared word by word (``name_difference``): ``same words``; ``typo`` (as
many words, and each word that differs is within one edit: a letter wrong, missing, added or two
letters swapped, in a word of more than three letters without digits: "Fund 2018" / "Fund 2019" are
two funds); or ``different words``. Names one letter apart can still be two organisations
("Naickele" / "Maickele"): there the other fields decide, a different parent or advisor outweighing
the name. A ``match`` needs a score of
``MATCH_SCORE`` and names that are the same words or a typo apart (or, when the word counts differ
— "Bluewater" / "Blue Water" — a name score of ``MIN_NAME_SCORE_OTHER_WORDING``). ``possible`` at
``POSSIBLE_SCORE`` or more is listed in client_matches for review and never merged; below that,
``no match``. The points were set on the labelled benchmark (``make bench``) and live here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

MATCH_SCORE = 90.0
POSSIBLE_SCORE = 80.0
MIN_NAME_SCORE_TO_MATCH = 85.0  # agreeing fields cannot make dissimilar names a match
MIN_NAME_SCORE_OTHER_WORDING = 95.0  # names with different word counts must be nearly the same text
MAX_TYPO_WORDS = 2  # words that may each carry one typo
SHORT_WORD = 3  # letters; a short word with one letter changed is another word ("abc" / "abd")


@dataclass(frozen=True)
class FieldWeight:
    agree: float
    disagree: float


FIELD_WEIGHTS: dict[str, FieldWeight] = {
    "region": FieldWeight(agree=2.0, disagree=-15.0),
    # parents are compared like names: "Veltaro Holdings" and "Veltaro Hldgs" (or a typo) agree
    "parent_org": FieldWeight(agree=3.0, disagree=-20.0),
    "advisor_email": FieldWeight(agree=2.0, disagree=-10.0),
    "advisor_domain": FieldWeight(agree=1.0, disagree=-5.0),
}

AGREE, DISAGREE, UNKNOWN = "agree", "disagree", "unknown"
SAME_WORDS, TYPO, DIFFERENT_WORDS, OTHER_WORD_COUNT = "same words", "typo", "different words", "different word count"
MATCH, POSSIBLE, NO_MATCH = "match", "possible", "no match"


@dataclass(frozen=True)
class MatchFeatures:
    """What the scorer compares, one row per record (positions line up with the record frame)."""

    name: np.ndarray  # normalised names (object); None where unmatchable
    region: np.ndarray  # canonical region or None
    parent_org: np.ndarray  # normalised parent organisation or None
    advisor_email: np.ndarray  # valid, lower-cased advisor e-mail or None
    advisor_domain: np.ndarray  # its domain or None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> MatchFeatures:
        return cls(*(frame[c].to_numpy(dtype=object) for c in ["name", "region", "parent_org", "advisor_email", "advisor_domain"]))


def score_pairs(features: MatchFeatures, a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Scores of the record pairs (a[i], b[i]): name_score, one agreement column per field, score, decision."""
    names_a, names_b = features.name[a], features.name[b]
    # an unmatchable name (None) is like no other name: only a human decision links it
    comparable = pd.notna(names_a) & pd.notna(names_b)
    name_score = np.zeros(len(a))
    if comparable.any():
        left, right = names_a[comparable], names_b[comparable]
        ratio = cpdist(left, right, scorer=fuzz.ratio, workers=-1)
        token_sort = cpdist(left, right, scorer=fuzz.token_sort_ratio, workers=-1)
        name_score[comparable] = np.maximum(ratio, token_sort)
    difference = np.full(len(a), OTHER_WORD_COUNT, dtype=object)
    if comparable.any():
        difference[comparable] = name_difference(names_a[comparable], names_b[comparable])
    score = name_score.copy()
    out = {"name_score": np.round(name_score, 2), "name_difference": difference}
    for field, weight in FIELD_WEIGHTS.items():
        values = getattr(features, field)
        agreement, points = _agreement(values[a], values[b], weight, fuzzy=field == "parent_org")
        out[f"{field}_agreement"] = agreement
        score += points
    score = np.round(score, 2)
    names_agree = np.isin(difference, [SAME_WORDS, TYPO]) | ((difference == OTHER_WORD_COUNT) & (name_score >= MIN_NAME_SCORE_OTHER_WORDING))
    decision = np.where(
        (score >= MATCH_SCORE) & (name_score >= MIN_NAME_SCORE_TO_MATCH) & names_agree,
        MATCH, np.where(score >= POSSIBLE_SCORE, POSSIBLE, NO_MATCH)
    ).astype(object)
    return pd.DataFrame({**out, "score": score, "decision": decision})


def _agreement(left: np.ndarray, right: np.ndarray, weight: FieldWeight, fuzzy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    known = pd.notna(left) & pd.notna(right)
    same = known & (left == right)
    if fuzzy and (known & ~same).any():
        close = known & ~same
        same[close] = np.isin(name_difference(left[close], right[close]), [SAME_WORDS, TYPO])
    agreement = np.where(same, AGREE, np.where(known, DISAGREE, UNKNOWN)).astype(object)
    points = np.where(same, weight.agree, np.where(known, weight.disagree, 0.0))
    return agreement, points


def name_difference(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per pair of normalised names: same words, typo, different words or different word count.

    Words are aligned by position (normalisation already removed what moves: "the", legal forms),
    and compared with the optimal-string-alignment distance (an adjacent swap is one edit).
    """
    words_a = pc.split_pattern(pa.array(left, pa.string()), " ")
    words_b = pc.split_pattern(pa.array(right, pa.string()), " ")
    count_a = pc.list_value_length(words_a).to_numpy(zero_copy_only=False)
    count_b = pc.list_value_length(words_b).to_numpy(zero_copy_only=False)
    out = np.full(len(left), OTHER_WORD_COUNT, dtype=object)
    aligned = np.flatnonzero(count_a == count_b)
    if not len(aligned):
        return out
    flat_a, flat_b = pc.list_flatten(pc.take(words_a, aligned)), pc.list_flatten(pc.take(words_b, aligned))
    lengths_a, lengths_b = pc.utf8_length(flat_a).to_numpy(zero_copy_only=False), pc.utf8_length(flat_b).to_numpy(zero_copy_only=False)
    flat_a, flat_b = flat_a.to_numpy(zero_copy_only=False), flat_b.to_numpy(zero_copy_only=False)
    edits = cpdist(flat_a, flat_b, scorer=OSA.distance, workers=-1).astype(np.int64)
    short = np.minimum(lengths_a, lengths_b) <= SHORT_WORD
    differs = edits > 0
    # a number is an identity, not a spelling: "Fund 2018" and "Fund 2019" are two funds
    numbers = differs.copy()
    if differs.any():
        numbers[differs] = pc.or_(
            pc.match_substring_regex(pa.array(flat_a[differs], pa.string()), "[0-9]"),
            pc.match_substring_regex(pa.array(flat_b[differs], pa.string()), "[0-9]"),
        ).to_numpy(zero_copy_only=False)
    not_a_typo = (edits > 1) | (differs & short) | numbers
    starts = np.concatenate([[0], np.cumsum(count_a[aligned])[:-1]])
    words_differing = np.add.reduceat(differs, starts) if len(flat_a) else np.zeros(len(aligned), np.int64)
    other_words = np.add.reduceat(not_a_typo, starts) if len(flat_a) else np.zeros(len(aligned), np.int64)
    out[aligned] = np.where(
        words_differing == 0, SAME_WORDS, np.where((other_words == 0) & (words_differing <= MAX_TYPO_WORDS), TYPO, DIFFERENT_WORDS)
    )
    return out
