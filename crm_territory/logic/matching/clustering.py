"""Clusters of records that are one organisation, from pairwise matches and human decisions.

Matches link records; linked records form a cluster (connected components). Plain connected
components chain: A~B and B~C put A and C together even when A and C look nothing alike
("Brompela Wealth Group" ~ "Broampela Wealth Group" ~ "Groampela Wealth Group"). The guard: in every
cluster of three or more records, *every* pair must be alike: the caller's ``pair_score`` at least
``CLUSTER_FLOOR`` (entity resolution scores 0 for names that are not the same words or a typo apart).
Must-linked records count as one: a group passes with another when any pair across them passes. A
cluster that fails is rebuilt greedily: its links (those that held in the last run first, then the
strongest) join two groups only if every pair across them passes and none is cannot-linked.

Human decisions always win: must-linked records end in one cluster, cannot-linked records never
do. Decisions that contradict each other (A must B, B must C, A cannot C) are an error, not a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from crm_territory.logic.matching.blocking import pairs_within_blocks
from crm_territory.logic.matching.scoring import POSSIBLE_SCORE

CLUSTER_FLOOR = POSSIBLE_SCORE  # every pair inside a cluster must at least be a "possible" match
MAX_VERIFIED_CLUSTER = 2000  # larger linked groups are not verified pair by pair: only must-links hold them together

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ContradictoryDecisions(ValueError):
    """Must-link decisions join records that a cannot-link decision keeps apart."""

    def __init__(self, message: str, pairs: list[tuple[int, int]]) -> None:
        super().__init__(message, pairs)
        self.pairs = pairs  # the contradicted cannot-link pairs, as record positions


@dataclass(frozen=True)
class Clusters:
    labels: np.ndarray  # cluster number per record, 0..k-1, in order of each cluster's first record
    split_by_guard: int  # linked groups the chain guard split
    too_large_to_verify: int  # linked groups over MAX_VERIFIED_CLUSTER records, left apart


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes for the undirected edges (a, b)."""
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1]


def cluster_records(
    n: int,
    links: tuple[np.ndarray, np.ndarray, np.ndarray],
    must_link: tuple[np.ndarray, np.ndarray],
    cannot_link: tuple[np.ndarray, np.ndarray],
    pair_score: PairScorer,
    floor: float = CLUSTER_FLOOR,
    max_verified: int = MAX_VERIFIED_CLUSTER,
    previous: np.ndarray | None = None,
) -> Clusters:
    """Cluster n records. ``links`` = (a, b, score) of the matched pairs; decisions as (a, b) record positions.

    ``previous``: each record's cluster in the last run (any integers; -1 for a new record). When the
    guard rebuilds a cluster, links between records that were together before go first, so a newcomer
    does not pull a member away from the cluster it had.
    """
    link_a, link_b, link_score = links
    must_a, must_b = must_link
    cannot_a, cannot_b = cannot_link
    must_group = components(n, must_a, must_b)
    contradicted = must_group[cannot_a] == must_group[cannot_b]
    if contradicted.any():
        raise ContradictoryDecisions(
            f"{int(contradicted.sum())} cannot-link decision(s) join records that must-link decisions put together",
            list(zip(cannot_a[contradicted].tolist(), cannot_b[contradicted].tolist())),
        )
    cannot = _pair_codes(cannot_a, cannot_b, n)
    keep = ~np.isin(_pair_codes(link_a, link_b, n), cannot)
    link_a, link_b, link_score = link_a[keep], link_b[keep], link_score[keep]
    edge_a, edge_b = np.concatenate([link_a, must_a]), np.concatenate([link_b, must_b])
    edge_score = np.concatenate([link_score, np.full(len(must_a), np.inf)])
    group = components(n, edge_a, edge_b)

    # Verify every linked group of 3+ records, and any holding a cannot-linked pair, pair by pair.
    sizes = np.bincount(group, minlength=n)
    suspect = sizes >= 3
    suspect[group[cannot_a][group[cannot_a] == group[cannot_b]]] = True
    verified = np.flatnonzero(suspect[group])
    pa_, pb_, too_large, _ = pairs_within_blocks(group[verified], verified, max_verified)
    passes = _group_passes(pa_, pb_, pair_score(pa_, pb_) >= floor, must_group, (cannot_a, cannot_b), n)
    failed_groups = np.unique(group[pa_[~passes]])

    labels = group.copy()
    next_label = n  # fresh labels above any component number
    members_of = _Index(group)
    edges_of = _Index(group[edge_a])
    pairs_of = _Index(group[pa_])
    for g in failed_groups:
        members = members_of[g]
        e, p = edges_of[g], pairs_of[g]
        local = _greedy(members, edge_a[e], edge_b[e], edge_score[e], pa_[p], pb_[p], passes[p], must_group, previous)
        labels[members] = local + next_label
        next_label += len(members)
    oversized = too_large  # block numbers are the group numbers here
    for g in oversized:
        members = members_of[g]
        labels[members] = must_group[members] + next_label
        next_label += n
    # renumber in order of first appearance: deterministic for the same input
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return Clusters(labels=order[inverse], split_by_guard=len(failed_groups), too_large_to_verify=len(oversized))


def _group_passes(
    a: np.ndarray, b: np.ndarray, alike: np.ndarray, must_group: np.ndarray, cannot: tuple[np.ndarray, np.ndarray], n: int
) -> np.ndarray:
    """Whether each pair may sit in one cluster, deciding for must-linked groups as a whole.

    A human vouched that must-linked records are one organisation, so the guard judges groups: two
    groups fit together when any pair across them is alike and no pair across them is cannot-linked
    (a record renamed by a merger, or an unmatchable name, must not veto its group's duplicates).
    """
    group_a, group_b = must_group[a], must_group[b]
    key = _pair_codes(group_a, group_b, n)
    fits = pd.Series(alike).groupby(key).any()
    blocked = _pair_codes(must_group[cannot[0]], must_group[cannot[1]], n)
    return (group_a == group_b) | (fits.reindex(key).to_numpy() & ~np.isin(key, blocked))


def _greedy(
    members: np.ndarray,
    edge_a: np.ndarray,
    edge_b: np.ndarray,
    edge_score: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    passes: np.ndarray,
    must_group: np.ndarray,
    previous: np.ndarray | None,
) -> np.ndarray:
    """Local cluster numbers for one linked group that failed the guard (a few records: a Python loop is fine)."""
    position = pd.Series(np.arange(len(members)), index=members)
    ok = np.zeros((len(members), len(members)), dtype=bool)
    ia, ib = position[pair_a].to_numpy(), position[pair_b].to_numpy()
    ok[ia, ib] = ok[ib, ia] = passes
    parent = pd.factorize(must_group[members])[0]  # must-linked records start together
    together_before = np.zeros(len(edge_a), dtype=bool)
    if previous is not None:
        together_before = (previous[edge_a] == previous[edge_b]) & (previous[edge_a] >= 0)
    order = np.lexsort((-edge_score, ~together_before))  # links that held last run first, then the strongest
    for u, v in zip(position[edge_a[order]].to_numpy(), position[edge_b[order]].to_numpy()):
        gu, gv = parent[u], parent[v]
        if gu == gv:
            continue
        left, right = np.flatnonzero(parent == gu), np.flatnonzero(parent == gv)
        if ok[np.ix_(left, right)].all():
            parent[right] = gu
    return parent


class _Index:
    """Positions of each value of ``keys``, looked up without a scan of the whole array per value."""

    def __init__(self, keys: np.ndarray) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def __getitem__(self, value) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted, value, "left"), np.searchsorted(self.sorted, value, "right")
        return self.order[lo:hi]


def _pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    low, high = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return low * n + high
