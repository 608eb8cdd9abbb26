"""The plan's sendable rows cut into ordered batches, each with a deterministic id and idempotency key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

MAX_BATCH = 200  # the CRM's bulk-assign limit


@dataclass(frozen=True)
class Batch:
    batch_id: str
    number: int
    rows: pd.DataFrame  # the plan's rows of the batch, in order

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.batch_id)


def idempotency_key(batch_id: str) -> str:
    """The same batch always carries the same key, so a re-sent batch is replayed, not applied again."""
    return "crm-territory-" + hashlib.sha256(batch_id.encode()).hexdigest()[:40]


def batch_id_of(plan_id: str, number: int) -> str:
    return f"{plan_id}-{number:05d}"


def plan_batches(plan: pd.DataFrame | Iterable[pd.DataFrame], size: int = MAX_BATCH, status: str = "send") -> Iterator[Batch]:
    """The ``status`` rows of ``plan`` in plan order, ``size`` at a time (batch numbers from 1).

    ``plan`` may be the whole plan or its rows in chunks, in order (read from storage a chunk at a time): the
    batches are the same either way, and only one chunk and one batch are held at a time. ``status`` refused
    gives the refused rows, batched the same way (``<plan_id>-refused-<n>``), for the log.
    """
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size {size}: give 1 to {MAX_BATCH} (the CRM's bulk-assign limit)")
    # Any: pandas ships no types here (pyright sees DataFrame as Unknown and would take a chunk for the iterable)
    chunks: Iterable[Any] = [plan] if isinstance(plan, pd.DataFrame) else plan
    plan_id: str | None = None
    pending: list[pd.DataFrame] = []
    held = 0
    number = 0
    for chunk in chunks:
        rows = chunk[chunk["status"] == status]
        if rows.empty:
            continue
        ids = rows["plan_id"].unique()
        if plan_id is None:
            plan_id = str(ids[0])
        if len(ids) != 1 or str(ids[0]) != plan_id:
            others = sorted({plan_id, *map(str, ids)})
            raise ValueError(f"the plan holds {len(others)} plan ids ({', '.join(others[:3])}...): one plan at a time")
        pending.append(rows)
        held += len(rows)
        while held >= size:
            joined = pd.concat(pending, ignore_index=True)
            number += 1
            yield _batch(plan_id, number, joined.iloc[:size].reset_index(drop=True), status)
            rest = joined.iloc[size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held and plan_id is not None:
        number += 1
        yield _batch(plan_id, number, pd.concat(pending, ignore_index=True), status)


def _batch(plan_id: str, number: int, rows: pd.DataFrame, status: str) -> Batch:
    batch_id = batch_id_of(plan_id, number) if status == "send" else f"{plan_id}-{status}-{number:05d}"
    return Batch(batch_id, number, rows)


def bulk_records(rows: pd.DataFrame, if_match_column: str = "etag") -> list[dict]:
    """The bulk-assign request body's records: client_id, owner_email, territory_id, if_match (per batch, <= 200)."""
    frame = pd.DataFrame(
        {
            "client_id": rows["crm_client_id"].astype(str),
            "owner_email": rows["owner_after"],
            "territory_id": rows["territory_after"],
            "if_match": rows[if_match_column],
        }
    )
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")
