"""Recall lost to blocking: the true pairs no blocking pass ever compares, so no score could find them.

The candidate pairs are the matcher's own, built as ``resolve`` builds them (its ``match_features``, then
``blocking_keys`` over the normalised name and the optional fields, then ``candidate_pairs``, over the records
in resolve's order), so a new pass or a changed key shows up here without touching the bench. The true pairs
are listed from the truth (an entity per record key), never from the matcher.

Three counts, each a share of every true pair of the dataset (recall's denominator):

* ``not_loaded``: a record of the pair never reached the matcher (quarantined at ingestion);
* ``never_compared``: both records loaded, but no pass puts them in one block: **recall lost to blocking**;
* ``unreachable``: of those, the pairs no chain of *compared true pairs* joins either (A-B and B-C compared,
  A-C not: clustering can still join A and C through B). Recall cannot exceed
  ``1 - (not_loaded + unreachable) / true_pairs`` unless a wrong merge happens to join them.

A large block of one exact name is chained by the matcher (each record paired with the next), not compared
all-pairs: its pairs count as compared only where chained, as the matcher compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class BlockingRecall:
    true_pairs: int
    not_loaded: int  # true pairs with a record the matcher never saw
    never_compared: int  # true pairs of loaded records that no blocking pass compares
    unreachable: int  # of never_compared: not joined by a chain of compared true pairs either
    candidate_pairs: int
    pairs_by_key: dict[str, int]

    @property
    def lost(self) -> float:
        """Recall lost to blocking: the share of true pairs no pass compares."""
        return self.never_compared / self.true_pairs if self.true_pairs else 0.0

    @property
    def lost_unreachable(self) -> float:
        return self.unreachable / self.true_pairs if self.true_pairs else 0.0

    @property
    def lost_not_loaded(self) -> float:
        return self.not_loaded / self.true_pairs if self.true_pairs else 0.0

    def as_dict(self) -> dict:
        return {
            "blocking_true_pairs": self.true_pairs,
            "blocking_not_loaded": self.not_loaded,
            "blocking_never_compared": self.never_compared,
            "blocking_unreachable": self.unreachable,
            "blocking_lost": self.lost,
            "blocking_lost_unreachable": self.lost_unreachable,
            "blocking_lost_not_loaded": self.lost_not_loaded,
        }


def matcher_candidate_pairs(records: pd.DataFrame):
    """(record keys in resolve's order, the CandidatePairs resolve compares over them).

    ``records``: client records (``client_records``), as handed to ``resolve``. The same steps as ``resolve``:
    positions follow record_key (stable), features from ``match_features``, keys from ``blocking_keys``.
    """
    from crm_territory.logic.matching.blocking import blocking_keys, candidate_pairs
    from crm_territory.logic.matching.resolve import match_features

    records = records.reset_index(drop=True)
    if not records["record_key"].is_monotonic_increasing:
        records = records.sort_values("record_key", kind="stable").reset_index(drop=True)
    features = match_features(records)
    return records["record_key"].to_numpy(dtype=object), candidate_pairs(blocking_keys(features["name"], features), len(records))


def true_pairs(entity: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (record key, record key) of records sharing an entity; records without one stand alone."""
    entity = entity.dropna()
    entity = entity[entity.duplicated(keep=False)]
    left: list[str] = []
    right: list[str] = []
    for keys in entity.groupby(entity).groups.values():
        keys = list(keys)
        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                left.append(keys[i])
                right.append(keys[j])
    return np.array(left, dtype=object), np.array(right, dtype=object)


def blocking_recall(records: pd.DataFrame, entity: pd.Series) -> BlockingRecall:
    """How many of ``entity``'s true pairs the matcher's blocking never compares over ``records``.

    ``entity``: record key -> the entity it truly is, for every record the recall is scored over (records the
    matcher did not load included: their pairs count as ``not_loaded``).
    """
    keys, candidates = matcher_candidate_pairs(records)
    n = len(keys)
    position = pd.Series(np.arange(n, dtype=np.int64), index=pd.Index(keys))
    left, right = true_pairs(entity)
    a = position.reindex(left).to_numpy(dtype=float)
    b = position.reindex(right).to_numpy(dtype=float)
    loaded = ~(np.isnan(a) | np.isnan(b))
    a, b = a[loaded].astype(np.int64), b[loaded].astype(np.int64)
    low, high = np.minimum(a, b), np.maximum(a, b)
    code = low * n + high
    compared = np.isin(code, np.asarray(candidates.a, dtype=np.int64) * n + np.asarray(candidates.b, dtype=np.int64))
    # components of the graph whose edges are the compared true pairs
    graph = coo_matrix((np.ones(int(compared.sum())), (low[compared], high[compared])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    unreachable = ~compared & (label[low] != label[high])
    return BlockingRecall(
        true_pairs=len(left),
        not_loaded=int((~loaded).sum()),
        never_compared=int((~compared).sum()),
        unreachable=int(unreachable.sum()),
        candidate_pairs=len(candidates),
        pairs_by_key=dict(candidates.pairs_by_key),
    )
