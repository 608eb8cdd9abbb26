"""Per-row explanations built from vectorised rules: why a row is quarantined, what is odd about a client."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# A message is fixed text, or a function that builds the texts for the flagged rows only
# (quoting the offending value for a million good rows would cost more than the rules themselves).
Message = str | Callable[[pd.Index], pd.Series]


def join_messages(rules: list[tuple[pd.Series, Message]], index: pd.Index) -> pd.Series:
    """For each row, the messages of the rules it breaks joined with '; ' (missing when it breaks none)."""
    joined = pd.Series(np.full(len(index), None, dtype=object), index=index)
    for flagged, message in rules:
        if not flagged.any():
            continue
        rows = flagged.index[flagged.to_numpy()]
        text = pd.Series(message, index=rows, dtype=object) if isinstance(message, str) else message(rows)
        before = joined.loc[rows]
        joined.loc[rows] = before.where(before.isna(), before + "; ").fillna("") + text
    return joined.where(joined.notna(), None)  # None, not NaN, for rows without a message
