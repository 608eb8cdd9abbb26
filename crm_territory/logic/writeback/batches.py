"""The plan's sendable rows cut into ordered batches, each with a deterministic id and idempotency key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

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


def plan_batches(plan: pd.DataFrame, size: int = MAX_BATCH) -> Iterator[Batch]:
    """The ``send`` rows of ``plan`` in plan order, ``size`` at a time (batch numbers from 1)."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size {size}: give 1 to {MAX_BATCH} (the CRM's bulk-assign limit)")
    sendable = plan[plan["status"] == "send"].reset_index(drop=True)
    if sendable.empty:
        return
    plan_ids = sendable["plan_id"].unique()
    if len(plan_ids) != 1:
        raise ValueError(f"the plan holds {len(plan_ids)} plan ids ({', '.join(map(str, plan_ids[:3]))}...): one plan at a time")
    numbers = sendable.index // size + 1
    for number, rows in sendable.groupby(numbers, sort=True):
        yield Batch(batch_id_of(str(plan_ids[0]), int(number)), int(number), rows.reset_index(drop=True))


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
