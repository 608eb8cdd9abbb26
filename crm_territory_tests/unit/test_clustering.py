"""Clustering (crm_territory.logic.matching.clustering): matches link records, the chain guard, human decisions win.

Every test drives ``cluster_records`` with a pair scorer it controls (a dict of pair -> score), so
the expectation follows from the documented rules, not from the fuzzy scorer.
"""

import numpy as np
import pytest

from crm_territory.logic.matching.clustering import CLUSTER_FLOOR, ContradictoryDecisions, cluster_records

NONE = (np.zeros(0, np.int64), np.zeros(0, np.int64))
HIGH, LOW = 95.0, 10.0


def pairs(*ab):
    """(a, b) position arrays from (a, b) tuples."""
    return (np.array([p[0] for p in ab], np.int64), np.array([p[1] for p in ab], np.int64))


def links(*scored):
    """Matched links from (a, b, score) tuples, as the (a, b, score) arrays cluster_records takes."""
    return (
        np.array([t[0] for t in scored], np.int64),
        np.array([t[1] for t in scored], np.int64),
        np.array([t[2] for t in scored], float),
    )


def scorer(scores: dict[tuple[int, int], float], default: float = HIGH):
    """A pair scorer reading ``scores`` (either order); unlisted pairs score ``default``."""

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([scores.get((int(x), int(y)), scores.get((int(y), int(x)), default)) for x, y in zip(a, b)], float)

    return score


def groups(labels: np.ndarray) -> set[frozenset[int]]:
    """The clusters as sets of record positions (label numbers aside)."""
    return {frozenset(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)}


def run(n, matched=None, must=NONE, cannot=NONE, scores=None, default=HIGH, **kwargs):
    matched = matched if matched is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return cluster_records(n, matched, must, cannot, scorer(scores or {}, default), **kwargs)


# --- linking -----------------------------------------------------------------------------------


def test_unlinked_records_are_each_their_own_cluster():
    out = run(4)
    assert groups(out.labels) == {frozenset({0}), frozenset({1}), frozenset({2}), frozenset({3})}


def test_a_match_puts_two_records_together():
    out = run(3, links((0, 2, HIGH)))
    assert groups(out.labels) == {frozenset({0, 2}), frozenset({1})}


def test_matches_are_transitive_when_every_pair_is_alike():
    # A~B, B~C and A,C also alike: one cluster of three, nothing split
    out = run(4, links((0, 1, HIGH), (1, 2, HIGH)), scores={}, default=HIGH)
    assert groups(out.labels) == {frozenset({0, 1, 2}), frozenset({3})}
    assert out.split_by_guard == 0


# --- chain guard -------------------------------------------------------------------------------


def test_the_chain_guard_splits_a_chain_whose_ends_are_dissimilar():
    # "Atlas Capital" ~ "Atlas Capital Group" ~ "Atlas Group": A and C look nothing alike
    out = run(3, links((0, 1, 98.0), (1, 2, 91.0)), scores={(0, 2): LOW})
    assert out.labels[0] != out.labels[2]
    # greedy, strongest link first: A-B (98) joins, then B-C cannot bring C next to A
    assert groups(out.labels) == {frozenset({0, 1}), frozenset({2})}
    assert out.split_by_guard == 1


def test_the_chain_guard_keeps_the_stronger_link():
    # same chain, but B-C is the stronger link: B stays with C
    out = run(3, links((0, 1, 91.0), (1, 2, 98.0)), scores={(0, 2): LOW})
    assert groups(out.labels) == {frozenset({0}), frozenset({1, 2})}


def test_a_pair_at_the_floor_passes_the_guard():
    out = run(3, links((0, 1, HIGH), (1, 2, HIGH)), scores={(0, 2): CLUSTER_FLOOR})
    assert groups(out.labels) == {frozenset({0, 1, 2})}
    assert out.split_by_guard == 0


def test_the_guard_applies_only_to_groups_of_three_or_more():
    # a directly matched pair is not re-checked by the pair scorer
    out = run(2, links((0, 1, HIGH)), scores={(0, 1): LOW})
    assert groups(out.labels) == {frozenset({0, 1})}


def test_a_must_linked_pair_always_passes_the_guard():
    # A must B (they score low), B~C matched, A~C alike: all three stay together
    out = run(3, links((1, 2, HIGH)), must=pairs((0, 1)), scores={(0, 1): LOW})
    assert groups(out.labels) == {frozenset({0, 1, 2})}


def test_groups_too_large_to_verify_are_left_apart_except_must_links():
    # four linked records, max_verified 3: not verified pair by pair, so only the must-link holds
    out = run(5, links((0, 1, HIGH), (1, 2, HIGH), (2, 3, HIGH)), must=pairs((2, 3)), max_verified=3)
    assert groups(out.labels) == {frozenset({0}), frozenset({1}), frozenset({2, 3}), frozenset({4})}
    assert out.too_large_to_verify == 1


# --- human decisions ---------------------------------------------------------------------------


def test_must_link_merges_records_that_never_matched():
    out = run(3, must=pairs((0, 2)), default=0.0)
    assert groups(out.labels) == {frozenset({0, 2}), frozenset({1})}


def test_must_links_chain_into_one_cluster_whatever_the_scores():
    # decisions are transitive: A must B, B must C, with every score at 0
    out = run(4, must=pairs((0, 1), (1, 2)), default=0.0)
    assert groups(out.labels) == {frozenset({0, 1, 2}), frozenset({3})}


def test_cannot_link_separates_a_directly_matched_pair():
    out = run(2, links((0, 1, 100.0)), cannot=pairs((0, 1)))
    assert groups(out.labels) == {frozenset({0}), frozenset({1})}


def test_cannot_link_separates_records_joined_only_through_a_third():
    # A~B, B~C, every pair alike, but a human says A and C are two organisations
    out = run(3, links((0, 1, HIGH), (1, 2, HIGH)), cannot=pairs((0, 2)))
    assert out.labels[0] != out.labels[2]


def test_cannot_link_between_two_must_linked_groups_keeps_them_apart():
    # {0,1} and {2,3} are must-linked; a match 1~2 would join them; 0 cannot 3 forbids it
    out = run(4, links((1, 2, HIGH)), must=pairs((0, 1), (2, 3)), cannot=pairs((0, 3)))
    assert groups(out.labels) == {frozenset({0, 1}), frozenset({2, 3})}


@pytest.mark.parametrize(
    ("must", "cannot"),
    [
        (pairs((0, 1)), pairs((0, 1))),  # the same pair both ways
        (pairs((0, 1)), pairs((1, 0))),  # ... written in the other order
        (pairs((0, 1), (1, 2)), pairs((0, 2))),  # A must B, B must C, A cannot C
    ],
)
def test_contradictory_decisions_raise(must, cannot):
    with pytest.raises(ContradictoryDecisions):
        run(3, must=must, cannot=cannot)


def test_contradictory_decisions_error_is_a_value_error_naming_the_pairs():
    with pytest.raises(ValueError) as error:
        run(3, must=pairs((0, 1), (1, 2)), cannot=pairs((0, 2)))
    assert (0, 2) in error.value.args[1]


# --- labels ------------------------------------------------------------------------------------


def test_labels_are_numbered_by_first_appearance():
    # clusters {0}, {1,4}, {2}, {3,5}: numbered in the order of their first record
    out = run(6, links((1, 4, HIGH), (3, 5, HIGH)))
    assert out.labels.tolist() == [0, 1, 2, 3, 1, 3]


def test_labels_are_0_to_k_minus_1_after_a_guard_split():
    out = run(4, links((0, 1, 98.0), (1, 2, 91.0)), scores={(0, 2): LOW})
    assert sorted(np.unique(out.labels).tolist()) == list(range(len(np.unique(out.labels))))
    assert out.labels.tolist() == [0, 0, 1, 2]


def test_labels_are_deterministic_whatever_the_order_of_the_links():
    forward = run(6, links((0, 1, 98.0), (1, 2, 91.0), (3, 4, 95.0), (4, 5, 93.0)), scores={(0, 2): LOW})
    backward = run(6, links((4, 5, 93.0), (3, 4, 95.0), (1, 2, 91.0), (0, 1, 98.0)), scores={(0, 2): LOW})
    again = run(6, links((0, 1, 98.0), (1, 2, 91.0), (3, 4, 95.0), (4, 5, 93.0)), scores={(0, 2): LOW})
    assert forward.labels.tolist() == backward.labels.tolist() == again.labels.tolist() == [0, 0, 1, 2, 2, 2]


def test_no_records_no_clusters():
    out = run(0)
    assert len(out.labels) == 0
