"""What every page shares: the current PRIMARY and SECONDARY rows, and labels people read."""

from __future__ import annotations

import pandas as pd

PRIMARY = "PRIMARY"
SECONDARY = "SECONDARY"


def current_rows(fact: pd.DataFrame, assignment_type: str) -> pd.DataFrame:
    """The assignments in force of one type (``is_current``: the client is active)."""
    return fact[(fact["assignment_type"] == assignment_type) & fact["is_current"].astype(bool)]


def primary_rows(fact: pd.DataFrame) -> pd.DataFrame:
    """Every client's PRIMARY row, active or not (an inactive client keeps its last territory)."""
    return fact[fact["assignment_type"] == PRIMARY]


def with_client(rows: pd.DataFrame, client_dim: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``rows`` with the client's ``columns`` from client_dim (a left join on client_key, vectorised)."""
    return rows.merge(client_dim[["client_key", *columns]], on="client_key", how="left", suffixes=("", "_client"))
