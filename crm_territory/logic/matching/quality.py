"""How good a clustering is against known truth: pairwise precision, recall and F1.

Two records form a *pair* when they sit in one cluster. Precision is the share of predicted pairs
that are truly one organisation; recall the share of true pairs found; F1 their harmonic mean.
Counted from cluster sizes (``k`` records make ``k(k-1)/2`` pairs), never by listing pairs, so a
million records cost a few group-bys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PairQuality:
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(sizes: pd.Series) -> int:
    sizes = sizes.astype("int64")
    return int((sizes * (sizes - 1) // 2).sum())


def pair_quality(predicted: pd.Series, truth: pd.Series) -> PairQuality:
    """``predicted`` (cluster per record) and ``truth`` (entity per record), aligned on the same index."""
    frame = pd.DataFrame({"predicted": predicted, "truth": truth})
    return PairQuality(
        true_pairs=_pairs(frame.groupby("truth").size()),
        predicted_pairs=_pairs(frame.groupby("predicted").size()),
        correct_pairs=_pairs(frame.groupby(["predicted", "truth"]).size()),
    )
