"""How alike two records are, in points an analyst can read back: name similarity plus field agreement.

score = name score (0-100: the better of rapidfuzz's ``ratio`` and ``token_sort_ratio`` on the
normalised names, so "Atlas Captial Partners" still scores ~96 and word order does not matter)
+ points for each other field both records fill in: the same canonical region, the same parent
organisation (compared like names, typos allowed), the same advisor, the same advisor e-mail domain
add; a different one takes away (two records of one organisation rarely disagree on where it is, which
group it belongs to or who owns it). How much is the match model's (``model.py``: estimated from the
book); ``FIELD_WEIGHTS`` below are the hand-set points it falls back to.

A high score is not enough: names of sibling organisations score high too ("Veltaro Capital
Partners" / "Veltaro Wealth Partners" ~87, "Brompela Wealth Group" / "Groampela Wealth Group" ~93).
So the names are also compared word by word (``name_difference``): ``same words``; ``typo or
abbreviation`` (as many words, and each word that differs is within one edit — a letter wrong,
missing, added or two letters swapped, in a word of more than three letters — or is an abbreviation
of the other: its first letter and then letters of it in order, at most 70% as long: "inv" /
"investment", "cnsl" / "counsel"; words with digits must be equal: "Fund 2018" and "Fund 2019" are
two funds); ``different words``; or ``different word count``. Names that agree word by word are
credited a name score of at least ``WORD_AGREEMENT_NAME_SCORE`` (the character ratio would punish an
abbreviation for every letter it leaves out).

Decision: a ``match`` needs a score of ``MATCH_SCORE`` and names that agree word by word (or, when
the word counts differ — "Bluewater" / "Blue Water" — a name score of ``MIN_NAME_SCORE_OTHER_WORDING``).
``possible`` at ``POSSIBLE_SCORE`` or more is listed in client_matches for review and never merged;
below that, ``no match``. Names one letter apart can still be two organisations ("Naickele" /
"Maickele"): there the other fields decide, a different parent or advisor outweighing the name. The
hand-set points were set on a labelled book of the mock CRM (seed 42) and are kept here, in one place;
``make bench`` measures the matcher on other seeds and on public data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, LCSseq
from rapidfuzz.process import cpdist

from crm_territory.logic.matching.fields import DEFAULT_MODEL, EXACT, FIELDS, FieldEvidence, FieldModel

MATCH_SCORE = 90.0
POSSIBLE_SCORE = 80.0
MIN_NAME_SCORE_OTHER_WORDING = 95.0  # names with different word counts must be nearly the same text
MAX_TYPO_WORDS = 2  # words that may each carry one typo
SHORT_WORD = 3  # letters; a short word with one letter changed is another word ("abc" / "abd")
MIN_ABBREVIATION = 2  # letters of an abbreviation ("co" / "company")
MAX_ABBREVIATION_SHARE = 0.7  # an abbreviation is clearly shorter than its word ("walth" / "wealth" is a typo, or another word)
WORD_AGREEMENT_NAME_SCORE = 95.0  # the name score credited to names that agree word by word
# A word spelled two ways, each held by at least MIN_SPELLING_RECORDS records, is two words, not a typo: a
# typo is a one-off, and brands one letter apart ("Leanex" / "Eanex") each name a family of records. Words
# more records hold than GENERIC_WORD_SHARE of the book (20 at least) are the sector's ("capital",
# "advisors"): their variants stay typos.
MIN_SPELLING_RECORDS = 2
GENERIC_WORD_SHARE = 0.001
MIN_GENERIC_WORD_RECORDS = 20
REORDERED_AGREES = ("same words",)  # what a name with its first or last word moved to the other end may count as


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
SAME_WORDS, TYPO, DIFFERENT_WORDS, OTHER_WORD_COUNT = (
    "same words",
    "typo or abbreviation",
    "different words",
    "different word count",
)
NOT_COMPARED = "not compared (unmatchable name)"
MATCH, POSSIBLE, NO_MATCH = "match", "possible", "no match"


@dataclass(frozen=True)
class WordCounts:
    """How many records' names hold each word: a word a few records share is a spelling the book uses."""

    counts: pd.Series  # word -> records holding it
    generic: float  # more records than this: a sector word

    @classmethod
    def of(cls, names: np.ndarray) -> WordCounts:
        """From the normalised names of the book (None: unmatchable)."""
        words = pc.list_flatten(pc.split_pattern(pa.array(names, pa.string(), from_pandas=True), " "))
        counted = pc.value_counts(words)
        counts = pd.Series(counted.field("counts").to_numpy(), index=counted.field("values").to_numpy(zero_copy_only=False))
        return cls(counts, max(MIN_GENERIC_WORD_RECORDS, GENERIC_WORD_SHARE * len(names)))

    def established(self, words: np.ndarray) -> np.ndarray:
        """Per word: a spelling of the book's own (held by MIN_SPELLING_RECORDS records or more, and not a sector word)."""
        held = self.counts.reindex(words).to_numpy(dtype=float)
        return (held >= MIN_SPELLING_RECORDS) & (held <= self.generic)


@dataclass(frozen=True)
class MatchFeatures:
    """What the scorer compares, one row per record (positions line up with the record frame)."""

    name: np.ndarray  # normalised names (object); None where unmatchable
    region: np.ndarray  # canonical region or None
    parent_org: np.ndarray  # normalised parent organisation or None
    advisor_email: np.ndarray  # valid, lower-cased advisor e-mail or None
    advisor_domain: np.ndarray  # its domain or None
    fields: FieldEvidence | None = None  # the optional fields a source gave (tax id, date of birth, ...); None: none
    # the points of region, parent, advisor e-mail and domain in force: the hand-set ones, or the match
    # model's (estimated from the book: model.py)
    weights: Mapping[str, FieldWeight] = field(default_factory=lambda: dict(FIELD_WEIGHTS))
    spellings: WordCounts | None = None  # the book's words: two established spellings are not a typo

    @cached_property
    def codes(self) -> dict[str, np.ndarray]:
        """Each field as integer codes (-1 where missing): pairs compare integers, not strings."""
        return {field: pd.factorize(getattr(self, field), use_na_sentinel=True)[0] for field in FIELD_WEIGHTS}

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, model: FieldModel = DEFAULT_MODEL) -> MatchFeatures:
        """From match features; columns named like ``FIELDS`` (tax_id, ..., normalised) add the optional fields,
        worth what ``model`` says (the fields it does not name are not compared)."""
        optional = [f for f in FIELDS if f in frame.columns and f in model.m]
        return cls(
            *(frame[c].to_numpy(dtype=object) for c in ["name", "region", "parent_org", "advisor_email", "advisor_domain"]),
            fields=FieldEvidence(frame[optional].reset_index(drop=True), model) if optional else None,
        )


def score_pairs(
    features: MatchFeatures, a: np.ndarray, b: np.ndarray, field_levels: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Scores of the record pairs (a[i], b[i]): name_score, one agreement column per field, score, decision.

    Then, per optional field (``fields.FIELDS``), its level and points (None / NaN where either record lacks
    it) and ``field_points``, their sum (NaN where no optional field was compared), added to the score. The
    same registration id (``tax_id`` exact) or date of birth stands in for names agreeing word by word:
    "Acme Holdings" and "ACME Hldgs International" with one tax id can match.
    """
    names_a, names_b = features.name[a], features.name[b]
    # an unmatchable name (None) is like no other name: only a human decision links it
    comparable = pd.notna(names_a) & pd.notna(names_b)
    name_score = np.zeros(len(a))
    if comparable.any():
        left, right = names_a[comparable], names_b[comparable]
        ratio = cpdist(left, right, scorer=fuzz.ratio, workers=-1)
        token_sort = cpdist(left, right, scorer=fuzz.token_sort_ratio, workers=-1)
        name_score[comparable] = np.maximum(ratio, token_sort)
    difference = np.full(len(a), NOT_COMPARED, dtype=object)
    if comparable.any():
        difference[comparable] = name_difference(left, right, features.spellings, reordered=np.asarray(token_sort) == 100)
    # names that agree word by word (a typo, "inv" for "investment") count at least WORD_AGREEMENT_NAME_SCORE:
    # the character ratio would punish an abbreviation for every letter it leaves out
    agree = _names_agree(difference, name_score)
    name_points = np.round(np.where(agree, np.maximum(name_score, WORD_AGREEMENT_NAME_SCORE), name_score), 2)
    # the score is kept as a sum of parts an analyst reads back from client_matches: name_points, each
    # field's *_points, field_points (rounded before they are added, so that the parts add up to the score)
    score = name_points.copy()
    out = {"name_score": np.round(name_score, 2), "name_difference": difference, "name_points": name_points}
    for name, weight in features.weights.items():
        values = getattr(features, name) if name == "parent_org" else None
        agreement, points = _agreement(features.codes[name], a, b, weight, values)
        out[f"{name}_agreement"], out[f"{name}_points"] = agreement, points
        score += points
    # field_levels: the optional fields' levels of these pairs when already computed (for the estimation)
    out |= _optional_field_points(features, a, b, field_levels)
    return _decide(pd.DataFrame({**out, "score": score + np.nan_to_num(out["field_points"])}))


def reweigh(scored: pd.DataFrame, features: MatchFeatures, a: np.ndarray, b: np.ndarray, field_levels) -> pd.DataFrame:
    """``scored`` (score_pairs of the same pairs) under the weights ``features`` now carries (the match model's):
    the field points, the score and the decision again, the name comparison (the costly part) kept. ``scored`` is
    updated in place (at 1M records a copy of it is ~0.5 GB) and returned."""
    out = scored
    score = out["name_points"].to_numpy(dtype=float).copy()
    for name, weight in features.weights.items():
        agreement = out[f"{name}_agreement"].to_numpy()
        out[f"{name}_points"] = np.where(agreement == AGREE, weight.agree, np.where(agreement == DISAGREE, weight.disagree, 0.0))
        score += out[f"{name}_points"].to_numpy()
    for column, values in _optional_field_points(features, a, b, field_levels).items():
        out[column] = values
    out["score"] = score + np.nan_to_num(out["field_points"].to_numpy(dtype=float))
    return _decide(out)


def _optional_field_points(features: MatchFeatures, a: np.ndarray, b: np.ndarray, field_levels) -> dict[str, np.ndarray]:
    """Per optional field its level and points (None / NaN where not on both records), and field_points, their
    sum (NaN where none was compared). ``field_levels``: the levels of these pairs when already computed."""
    evidence = features.fields.compare(a, b, field_levels) if features.fields is not None else {}
    out = {}
    field_points = np.full(len(a), np.nan)
    for name in FIELDS:
        level, points = evidence.get(name, (np.full(len(a), None, dtype=object), np.full(len(a), np.nan)))
        out[f"{name}_level"], out[f"{name}_points"] = level, points
        field_points = np.where(np.isnan(points), field_points, np.nan_to_num(field_points) + np.nan_to_num(points))
    out["field_points"] = np.round(field_points, 2)
    return out


def _decide(out: pd.DataFrame) -> pd.DataFrame:
    """The decision from the score's parts: a match needs MATCH_SCORE and names agreeing word by word (or the
    same tax id or date of birth, for names that can be compared at all)."""
    comparable = (out["name_difference"] != NOT_COMPARED).to_numpy()
    agree = _names_agree(out["name_difference"].to_numpy(), out["name_score"].to_numpy())
    # an unmatchable name is still linked only by a human
    agree = agree | (_identified(out["tax_id_level"].to_numpy(), out["date_of_birth_level"].to_numpy()) & comparable)
    score = np.round(out["score"].to_numpy(dtype=float), 2)
    out["score"] = score
    out["decision"] = np.where(
        (score >= MATCH_SCORE) & agree, MATCH, np.where(score >= POSSIBLE_SCORE, POSSIBLE, NO_MATCH)
    ).astype(object)
    return out


def _names_agree(difference: np.ndarray, name_score: np.ndarray) -> np.ndarray:
    return np.isin(difference, [SAME_WORDS, TYPO]) | (
        (difference == OTHER_WORD_COUNT) & (name_score >= MIN_NAME_SCORE_OTHER_WORDING)
    )


def _identified(tax_id_level: np.ndarray, date_of_birth_level: np.ndarray) -> np.ndarray:
    """Pairs whose registration id, or (for individuals) date of birth, is the same: that stands in for names
    agreeing word by word ("Jane Smith" / "Smith Jaen", "Acme Holdings" / "ACME Hldgs International"); the
    score must still reach MATCH_SCORE. Organisations have no date of birth: siblings stay apart."""
    return np.asarray(tax_id_level == EXACT, dtype=bool) | np.asarray(date_of_birth_level == EXACT, dtype=bool)


def alike_score(scored: pd.DataFrame) -> np.ndarray:
    """The score of pairs whose names agree (same words, a typo, or nearly the same text) or whose
    registration ids or dates of birth are the same; 0 for the others.

    What the clustering guard compares with its floor: siblings ("Brompela" / "Groampela Wealth Group")
    never sit in one cluster, whatever their other fields, unless a human says so.
    """
    agree = _names_agree(scored["name_difference"].to_numpy(), scored["name_score"].to_numpy())
    if "tax_id_level" in scored.columns:
        identified = _identified(scored["tax_id_level"].to_numpy(), scored["date_of_birth_level"].to_numpy())
        agree = agree | (identified & (scored["name_difference"].to_numpy() != NOT_COMPARED))
    return np.where(agree, scored["score"].to_numpy(), 0.0)


_AGREEMENT_TEXT = np.array([UNKNOWN, DISAGREE, AGREE], dtype=object)


def _agreement(
    codes: np.ndarray, a: np.ndarray, b: np.ndarray, weight: FieldWeight, fuzzy_values: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Agreement of one field per pair; with ``fuzzy_values``, different values that are the same words or a typo apart agree."""
    left, right = codes[a], codes[b]
    known = (left >= 0) & (right >= 0)
    same = known & (left == right)
    if fuzzy_values is not None and (known & ~same).any():
        close = np.flatnonzero(known & ~same)
        same[close] = np.isin(name_difference(fuzzy_values[a[close]], fuzzy_values[b[close]]), [SAME_WORDS, TYPO])
    state = known.astype(np.int8) + same  # 0 unknown, 1 disagree, 2 agree
    points = np.where(same, weight.agree, np.where(known, weight.disagree, 0.0))
    return _AGREEMENT_TEXT[state], points


def name_difference(
    left: np.ndarray, right: np.ndarray, spellings: WordCounts | None = None, reordered: np.ndarray | None = None
) -> np.ndarray:
    """Per pair of normalised names: same words, typo or abbreviation, different words or different word count.

    Words are aligned by position (normalisation already removed what moves: "the", legal forms),
    and compared with the optimal-string-alignment distance (an adjacent swap is one edit) and, for
    abbreviations, the longest common subsequence. A name whose first or last word moved to the other
    end, the words otherwise unchanged, is the same words: a person filed surname first ("Smith, Jane"
    / "Jane Smith", "Smith Jane Mary" / "Jane Mary Smith"), as CRM exports and forms often write them.
    """
    out = _aligned_difference(left, right, spellings)
    # ``reordered``: the pairs whose names hold the same words in another order (token_sort_ratio 100), the
    # only ones a rotation can make the same words; None: no rotation tried (parent organisations)
    if reordered is None:
        return out
    retry = np.flatnonzero((out == DIFFERENT_WORDS) & reordered)
    if not len(retry) or not REORDERED_AGREES:
        return out
    text = pa.array(right[retry], pa.string())
    first, rest = pc.replace_substring_regex(text, r" .*$", ""), pc.replace_substring_regex(text, r"^[^ ]* ", "")
    last, front = pc.replace_substring_regex(text, r"^.* ", ""), pc.replace_substring_regex(text, r" [^ ]*$", "")
    best = out[retry]
    for rotated in (pc.binary_join_element_wise(rest, first, " "), pc.binary_join_element_wise(last, front, " ")):
        again = _aligned_difference(left[retry], rotated.to_numpy(zero_copy_only=False).astype(object), spellings)
        best = np.where(np.isin(again, REORDERED_AGREES) & (best == DIFFERENT_WORDS), again, best)
    out[retry] = best
    return out


def _aligned_difference(left: np.ndarray, right: np.ndarray, spellings: WordCounts | None = None) -> np.ndarray:
    words_a = pc.split_pattern(pa.array(left, pa.string()), " ")
    words_b = pc.split_pattern(pa.array(right, pa.string()), " ")
    count_a = pc.list_value_length(words_a).to_numpy(zero_copy_only=False)
    count_b = pc.list_value_length(words_b).to_numpy(zero_copy_only=False)
    out = np.full(len(left), OTHER_WORD_COUNT, dtype=object)
    aligned = np.flatnonzero(count_a == count_b)
    if not len(aligned):
        return out
    flat_a, flat_b = pc.list_flatten(pc.take(words_a, aligned)), pc.list_flatten(pc.take(words_b, aligned))
    # most aligned words are equal: compare in Arrow, and make Python strings only of the differing ones
    differs = ~pc.equal(flat_a, flat_b).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(differs)
    diff_a, diff_b = pc.take(flat_a, at), pc.take(flat_b, at)
    lengths_a, lengths_b = (
        pc.utf8_length(diff_a).to_numpy(zero_copy_only=False),
        pc.utf8_length(diff_b).to_numpy(zero_copy_only=False),
    )
    # a number is an identity, not a spelling: "Fund 2018" and "Fund 2019" are two funds
    numbers = pc.or_(pc.match_substring_regex(diff_a, "[0-9]"), pc.match_substring_regex(diff_b, "[0-9]")).to_numpy(
        zero_copy_only=False
    )
    same_start = pc.equal(pc.utf8_slice_codeunits(diff_a, 0, 1), pc.utf8_slice_codeunits(diff_b, 0, 1)).to_numpy(
        zero_copy_only=False
    )
    diff_a, diff_b = diff_a.to_numpy(zero_copy_only=False), diff_b.to_numpy(zero_copy_only=False)
    edits = cpdist(diff_a, diff_b, scorer=OSA.distance, workers=-1).astype(np.int64) if len(at) else np.zeros(0, np.int64)
    shorter, longer = np.minimum(lengths_a, lengths_b), np.maximum(lengths_a, lengths_b)
    typo = (edits == 1) & (shorter > SHORT_WORD)
    if spellings is not None and typo.any():
        # two spellings the book holds several times each are two words (two brands: "Leanex" / "Eanex"), not a typo
        at_typo = np.flatnonzero(typo)
        typo[at_typo[spellings.established(diff_a[at_typo]) & spellings.established(diff_b[at_typo])]] = False
    # an abbreviation is the word with letters left out: "inv" / "investment", "cnsl" / "counsel"
    common = cpdist(diff_a, diff_b, scorer=LCSseq.similarity, workers=-1) if len(at) else np.zeros(0, np.int64)
    abbreviation = same_start & (shorter >= MIN_ABBREVIATION) & (shorter <= MAX_ABBREVIATION_SHARE * longer) & (common == shorter)
    not_a_typo = np.zeros(len(differs), dtype=bool)
    not_a_typo[at] = ~(typo | abbreviation) | numbers
    starts = np.concatenate([[0], np.cumsum(count_a[aligned])[:-1]])
    words_differing = np.add.reduceat(differs, starts) if len(differs) else np.zeros(len(aligned), np.int64)
    other_words = np.add.reduceat(not_a_typo, starts) if len(differs) else np.zeros(len(aligned), np.int64)
    out[aligned] = np.where(
        words_differing == 0,
        SAME_WORDS,
        np.where((other_words == 0) & (words_differing <= MAX_TYPO_WORDS), TYPO, DIFFERENT_WORDS),
    )
    return out
