"""Blocking (which records are compared at all) and scoring (how alike a compared pair is).

Blocking rules (crm_territory.logic.matching.blocking): records sharing a key (same name, same first word,
the first word within one edit + the other words) are paired, nothing else; blocks shared by more
than max_block_size records are skipped and reported. Scoring rules (crm_territory.logic.matching.scoring): name score = max(ratio,
token_sort_ratio) on normalised names, plus FIELD_WEIGHTS points per field both records fill in;
``match`` needs MATCH_SCORE and names that agree, ``possible`` at POSSIBLE_SCORE, else ``no match``.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.matching.blocking import MAX_BLOCK_SIZE, blocking_keys, candidate_pairs
from crm_territory.logic.matching.names import normalise_names
from crm_territory.logic.matching.scoring import (
    FIELD_WEIGHTS,
    MATCH,
    MATCH_SCORE,
    NO_MATCH,
    POSSIBLE,
    POSSIBLE_SCORE,
    MatchFeatures,
    WordCounts,
    score_pairs,
)

# =================================================================================================
# Blocking
# =================================================================================================


def candidates(names, max_block_size=MAX_BLOCK_SIZE):
    """Candidate pairs of raw names, through normalisation and blocking keys."""
    n = normalise_names(pd.Series(list(names), dtype=object))
    return candidate_pairs(blocking_keys(n.name), len(n.name), max_block_size)


def pair_set(found) -> set[tuple[int, int]]:
    return set(zip(found.a.tolist(), found.b.tolist()))


def blocked_by(found) -> dict[tuple[int, int], str]:
    return dict(zip(zip(found.a.tolist(), found.b.tolist()), found.blocked_by.tolist()))


def test_spelling_variants_of_one_name_meet_on_the_same_name_key():
    found = candidates(["Atlas Capital Partners, LLC", "ATLAS CAPITAL PTNRS.", "The Atlas Capital Partners Inc."])
    assert pair_set(found) == {(0, 1), (0, 2), (1, 2)}
    assert set(blocked_by(found).values()) == {"same name"}


def test_reordered_legal_forms_still_produce_the_pair():
    found = candidates(["Atlas Capital & Co., LLC", "Atlas Capital LLC & Co."])
    assert blocked_by(found) == {(0, 1): "same name"}


def test_a_typo_in_a_later_word_is_paired_by_the_first_word():
    found = candidates(["Atlas Capital Partners", "Atlas Captial Partners"])
    assert blocked_by(found) == {(0, 1): "same first word"}


@pytest.mark.parametrize(
    "typo",
    [
        "Atlsa Capital Partners",  # two letters swapped
        "Atlaz Capital Partners",  # last letter wrong
        "Btlas Capital Partners",  # first letter wrong
        "Tatlas Capital Partners",  # a letter added at the start
        "Atls Capital Partners",  # a letter missing
        "Atlass Capital Partners",  # a letter added at the end
    ],
)
def test_a_typo_in_the_first_word_still_produces_the_pair(typo):
    found = candidates(["Atlas Capital Partners", typo])
    assert pair_set(found) == {(0, 1)}
    assert blocked_by(found)[(0, 1)] not in {"same name", "same first word"}


def test_a_typo_in_a_one_word_name_still_produces_the_pair():
    found = candidates(["Pinnacle LLC", "Pinnacel Inc."])
    assert pair_set(found) == {(0, 1)}


def test_records_sharing_no_key_are_never_paired():
    found = candidates(
        ["Atlas Capital Partners", "Beacon Wealth Management", "Crescent Advisory Group", "Capital Atlas Partners"]
    )
    assert pair_set(found) == set()


def test_unmatchable_names_get_no_keys_and_are_never_paired():
    # identical raw values, but unmatchable: only a human decision links them
    found = candidates(["北京资本", "北京资本", None, None, "", "A", "A"])
    assert pair_set(found) == set()


def test_an_unmatchable_name_is_not_paired_with_a_matchable_one():
    found = candidates(["Atlas Capital", None, "Atlas Capital Inc."])
    assert pair_set(found) == {(0, 2)}


def test_a_block_larger_than_the_limit_is_skipped_and_reported():
    # four records share only the first word "capital": a block of 4 over a limit of 3
    names = ["Capital One Partners", "Capital Two Advisors", "Capital Three Group", "Capital Four Trust"]
    found = candidates(names, max_block_size=3)
    assert pair_set(found) == set()
    assert found.skipped_blocks.to_dict("records") == [
        {"key_name": "same first word", "key": "capital", "records": 4, "handled": "skipped"}
    ]


def test_a_large_block_of_one_exact_name_is_chained_not_skipped():
    """Five records of one exact name over a limit of 3: each is paired with the next (4 pairs, not 10, not 0)."""
    found = candidates(
        ["Zentra Capital", "ZENTRA CAPITAL", "Zentra Capital LLC", "Zentra Capital, Inc.", "zentra capital"], max_block_size=3
    )
    assert pair_set(found) == {(0, 1), (1, 2), (2, 3), (3, 4)}
    handled = found.skipped_blocks.set_index("key_name")["handled"].to_dict()
    assert handled["same name"] == "chained" and handled["same first word"] == "skipped"


def test_a_block_at_the_limit_is_compared():
    names = ["Capital One Partners", "Capital Two Advisors", "Capital Three Group"]
    found = candidates(names, max_block_size=3)
    assert pair_set(found) == {(0, 1), (0, 2), (1, 2)}
    assert found.skipped_blocks.empty


def test_the_block_limit_counts_records_not_key_variants():
    # "Anna" has the deletion variant "ana" twice (either n deleted); with "Anma" and "Anka" the block
    # "ana|capital" holds three records: at a limit of 3 it is compared, not skipped as "4 records"
    found = candidates(["Anna Capital", "Anma Capital", "Anka Capital"], max_block_size=3)
    assert pair_set(found) == {(0, 1), (0, 2), (1, 2)}
    assert found.skipped_blocks.empty


def test_a_skipped_block_does_not_hide_pairs_another_key_finds():
    # five "capital ..." records exceed the limit on the first word, but two of them share the whole name
    names = [
        "Capital One Partners",
        "Capital Two Advisors",
        "Capital Three Group",
        "Capital Four Trust",
        "Capital One Partners LLC",
    ]
    found = candidates(names, max_block_size=3)
    assert blocked_by(found) == {(0, 4): "same name"}
    assert found.skipped_blocks["key"].tolist() == ["capital"]


def test_pairs_are_unique_ordered_and_labelled_by_the_first_key_that_found_them():
    # identical names share all four keys: still one pair each, labelled "same name"
    names = ["Atlas Capital Partners"] * 3 + ["Atlas Capital Partners Inc"]
    found = candidates(names)
    assert len(found) == len(pair_set(found)) == 6
    assert (found.a < found.b).all()
    assert set(found.blocked_by) == {"same name"}


def test_no_records_no_pairs():
    found = candidates([])
    assert len(found) == 0 and found.skipped_blocks.empty


def test_candidate_pairs_grow_linearly_not_quadratically():
    """20,000 distinct names (brands from a pool, generic trailing words) give far fewer than n²/2 pairs."""
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    brands = sorted({"".join(rng.choice(letters, rng.integers(5, 10))) for _ in range(4000)})
    generic = [
        "capital",
        "partners",
        "wealth",
        "management",
        "advisors",
        "group",
        "holdings",
        "trust",
        "equity",
        "family",
        "office",
        "fund",
    ]
    names: set[str] = set()
    while len(names) < 20_000:
        first = "capital" if rng.random() < 0.02 else brands[rng.integers(len(brands))]  # a too-common first word
        names.add(" ".join([first, *rng.choice(generic, rng.integers(1, 4), replace=False)]))
    n = len(names)
    found = candidates(sorted(names))
    assert len(found) < 20 * n  # ~ n²/2 would be 200 million
    assert len(found) > n / 10  # yet brands repeat, so there is something to compare
    assert "capital" in set(found.skipped_blocks["key"])  # the common first word was skipped, not compared all-pairs


# =================================================================================================
# Scoring
# =================================================================================================


def features(names, region=None, parent_org=None, advisor_email=None, advisor_domain=None):
    """MatchFeatures for raw names; each other field is one value for every record or a list of them."""
    n = normalise_names(pd.Series(list(names), dtype=object))

    def column(value):
        return list(value) if isinstance(value, (list, tuple)) else [value] * len(names)

    frame = pd.DataFrame(
        {
            "name": n.name,
            "region": column(region),
            "parent_org": column(parent_org),
            "advisor_email": column(advisor_email),
            "advisor_domain": column(advisor_domain),
        }
    )
    return MatchFeatures.from_frame(frame)


def score(name_a, name_b, **fields) -> pd.Series:
    """The score row of one pair (record 0 vs record 1); fields are (value_a, value_b) or one shared value."""
    columns = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}
    return score_pairs(features([name_a, name_b], **columns), np.array([0]), np.array([1])).iloc[0]


def test_identical_normalised_names_with_agreeing_region_match():
    row = score("Atlas Capital Partners, LLC", "ATLAS CAPITAL PTNRS.", region="Northeast")
    assert row["name_score"] == 100
    assert row["region_agreement"] == "agree"
    assert row["score"] == pytest.approx(100 + FIELD_WEIGHTS["region"].agree)
    assert row["decision"] == MATCH


def test_each_field_both_records_fill_in_adds_or_takes_its_points():
    agree = score(
        "Atlas Capital",
        "Atlas Capital",
        region="West",
        parent_org="atlas holdings",
        advisor_email="jo@x.com",
        advisor_domain="x.com",
    )
    assert agree["score"] == pytest.approx(100 + sum(w.agree for w in FIELD_WEIGHTS.values()))
    disagree = score(
        "Atlas Capital",
        "Atlas Capital",
        region=("West", "Midwest"),
        parent_org=("a", "b"),
        advisor_email=("jo@x.com", "al@y.com"),
        advisor_domain=("x.com", "y.com"),
    )
    assert disagree["score"] == pytest.approx(100 + sum(w.disagree for w in FIELD_WEIGHTS.values()))
    columns = ["region_agreement", "parent_org_agreement", "advisor_email_agreement", "advisor_domain_agreement"]
    assert tuple(disagree[columns]) == ("disagree",) * 4


def test_parents_are_compared_like_names_a_typo_still_agrees():
    """Parent organisations agree when their normalised names are the same words or a typo apart."""
    typo = score("Atlas Capital", "Atlas Capital", parent_org=("atlas holdings", "atlsa holdings"))
    assert typo["parent_org_agreement"] == "agree"
    other = score("Atlas Capital", "Atlas Capital", parent_org=("atlas holdings", "beacon holdings"))
    assert other["parent_org_agreement"] == "disagree"


def test_a_different_advisor_turns_a_typo_level_match_into_a_possible_one():
    """Names one typo apart in one region match; owned by two different advisors they only go to review."""
    same_owner = score(
        "Veltaro Capital Partners", "Veltaor Capital Partners", region="West", advisor_email="jo@x.com", advisor_domain="x.com"
    )
    assert (same_owner["name_difference"], same_owner["decision"]) == ("typo or abbreviation", MATCH)
    other_owner = score(
        "Veltaro Capital Partners",
        "Veltaor Capital Partners",
        region="West",
        advisor_email=("jo@x.com", "al@x.com"),
        advisor_domain="x.com",
    )
    assert other_owner["advisor_email_agreement"] == "disagree" and other_owner["decision"] == "possible"


def test_a_field_only_one_record_fills_in_is_unknown_and_scores_nothing():
    row = score("Atlas Capital", "Atlas Capital", region=("West", None), parent_org=(None, "atlas holdings"))
    assert (row["region_agreement"], row["parent_org_agreement"], row["advisor_domain_agreement"]) == ("unknown",) * 3
    assert row["score"] == 100


@pytest.mark.parametrize(
    ("a", "b"),
    [("Veltaro Capital Partners", "Veltaro Wealth Partners"), ("Redwood Equity Holdings", "Ironwood Equity Holdings")],
)
def test_sibling_organisations_do_not_match_even_when_every_field_agrees(a, b):
    row = score(a, b, region="West", parent_org="the group", advisor_domain="group.com")
    assert row["decision"] != MATCH


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Atlas Capital Partners", "Atlas Captial Partners"),  # two letters swapped
        ("Redwood Equity Holdings", "Redwood Equity Holdngs Inc."),  # a letter missing, a legal form added
        ("Beacon Wealth Management", "Beacon Wealth Managment"),
    ],
)
def test_a_typo_duplicate_matches(a, b):
    row = score(a, b, region="Midwest")
    assert row["name_score"] >= 90
    assert row["decision"] == MATCH


def test_word_order_does_not_lower_the_name_score():
    assert score("Smith Jones Partners", "Jones Smith Partners")["name_score"] == 100


def test_a_disagreeing_region_demotes_a_match():
    agree = score("Atlas Capital Partners", "Atlas Capital Partners", region="West")
    disagree = score("Atlas Capital Partners", "Atlas Capital Partners", region=("West", "Southeast"))
    assert agree["decision"] == MATCH
    assert disagree["decision"] != MATCH
    assert disagree["score"] == pytest.approx(100 + FIELD_WEIGHTS["region"].disagree)
    assert disagree["decision"] == (POSSIBLE if disagree["score"] >= POSSIBLE_SCORE else NO_MATCH)


def test_a_disagreeing_parent_demotes_a_match():
    row = score("Atlas Capital Partners", "Atlas Capital Partners", parent_org=("atlas holdings", "beacon group"))
    assert row["parent_org_agreement"] == "disagree"
    assert row["score"] < MATCH_SCORE and row["decision"] != MATCH


def test_a_disagreeing_field_demotes_a_typo_match_further():
    row = score("Atlas Capital Partners", "Atlas Captial Partners", region=("West", "Midwest"))
    assert row["decision"] != MATCH


def test_a_different_number_is_not_a_typo():
    # a typo is "a letter wrong, missing, added or two letters swapped": 2018 and 2019 are two funds
    row = score("Atlas Fund 2018", "Atlas Fund 2019", region="West")
    assert row["decision"] != MATCH


def test_agreeing_fields_cannot_make_dissimilar_names_a_match():
    row = score("Atlas Capital Partners", "Beacon Capital Partners", region="West", parent_org="group", advisor_domain="x.com")
    assert row["decision"] != MATCH


@pytest.mark.parametrize(
    ("a", "b"), [(None, "Atlas Capital"), ("北京资本", "北京资本"), (None, None), ("A", "A"), ("Inc.", "Inc.")]
)
def test_unmatchable_names_score_zero_and_never_match(a, b):
    row = score(a, b, region="West", parent_org="atlas holdings", advisor_domain="x.com")
    assert row["name_score"] == 0
    assert row["decision"] == NO_MATCH


def test_pairs_are_scored_independently_in_one_call():
    f = features(
        ["Atlas Capital Partners", "Atlas Captial Partners", None, "Veltaro Wealth Partners", "Veltaro Capital Partners"],
        region="West",
    )
    out = score_pairs(f, np.array([0, 0, 3, 1]), np.array([1, 2, 4, 0]))
    assert out["decision"].iloc[0] == MATCH  # a typo
    assert out["decision"].iloc[1] == NO_MATCH  # an unmatchable name
    assert out["decision"].iloc[2] != MATCH  # siblings
    assert out["score"].iloc[3] == out["score"].iloc[0]  # (1, 0) scores as (0, 1)
    assert len(out) == 4


def test_two_spellings_the_book_uses_several_times_each_are_two_brands_not_a_typo():
    # "Leanex" and "Eanex" each name a family of records: one letter apart, they are two brands
    names = ["Leanex Advisory Group", "Eanex Advisory Group", "Leanex Capital Partners", "Eanex Wealth Office"]
    # a one-off spelling (held by one record) is a typo of the other
    names += ["Brovanti Advisory Group", "Brovant Advisory Group", "Brovanti Capital Partners"]
    normalised = normalise_names(pd.Series(names, dtype=object)).name
    book = dataclasses.replace(features(names, region="West"), spellings=WordCounts.of(normalised.to_numpy(dtype=object)))
    out = score_pairs(book, np.array([0, 4]), np.array([1, 5]))
    assert out["name_difference"].tolist() == ["different words", "typo or abbreviation"]
    assert out["decision"].tolist() == ["possible", "match"]
    # without the book's spellings (a pair scored alone) the one-letter difference is a typo, as before
    alone = score_pairs(features(names, region="West"), np.array([0]), np.array([1]))
    assert alone["name_difference"].tolist() == ["typo or abbreviation"]
    # the sector's own words are not brands: a word more records hold than 0.1% of the book (20 at least)
    sector = WordCounts.of(np.array(["advisory"] * 25 + ["advisors"] * 30 + ["eanex"] * 3, dtype=object))
    assert sector.established(np.array(["advisory", "advisors", "eanex", "unknown"], dtype=object)).tolist() == [
        False,
        False,
        True,
        False,
    ]
