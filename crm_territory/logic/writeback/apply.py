"""Applying a plan, batch by batch, and rolling a batch back: resumable from the log, never overwriting an edit.

A batch is sent only if the log holds no row of it; its answer (every record's outcome) is appended to the log
before the next batch is sent. A re-run of an applied plan therefore sends nothing, and an interrupted one
resumes at the first batch not logged; that batch is re-sent with the same idempotency key, so the CRM replays
what it already applied instead of applying it twice. Each record is sent with the etag the plan read as
``if_match``: a record changed in the CRM since is a ``conflict``, left as it is and logged with both values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from crm_territory.logic.writeback.batches import MAX_BATCH, bulk_records, idempotency_key, plan_batches
from crm_territory.logic.writeback.client import CrmWriter, WritebackError
from crm_territory.logic.writeback.journal import Journal
from crm_territory.schemas import WRITEBACK_LOG_STATUSES, CrmWritebackLog, columns_of

Log = Callable[[str], None]


@dataclass
class ApplySummary:
    plan_id: str | None
    batches_sent: int = 0
    batches_skipped: int = 0  # already in the log
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITEBACK_LOG_STATUSES, 0))
    seconds: float = 0.0

    def add(self, rows: pd.DataFrame) -> None:
        for status, count in rows["status"].value_counts().items():
            self.records[str(status)] += int(count)

    def describe(self) -> str:
        counts = ", ".join(f"{n:,} {status}" for status, n in self.records.items() if n)
        return (
            f"plan {self.plan_id}: {self.batches_sent} batch(es) sent, {self.batches_skipped} already done"
            f" ({counts or 'no record sent'}) in {self.seconds:.1f}s"
        )


def _none(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


def outcome_rows(
    rows: pd.DataFrame, results: list[dict], batch_id: str, plan_id: str, action: str, now: pd.Timestamp
) -> pd.DataFrame:
    """The log rows of a batch from its plan rows and the CRM's per-record answers (in the order sent)."""
    answered = pd.DataFrame.from_records(
        results, columns=["client_id", "status", "etag_before", "etag_after", "error"]
    ).reset_index(drop=True)
    sent_ids = rows["crm_client_id"].astype(str).reset_index(drop=True)
    mismatch = answered["client_id"].astype(str) != sent_ids
    if mismatch.any():
        first = int(mismatch.idxmax())
        raise WritebackError(
            f"batch {batch_id}: answer {first + 1} is for client {answered['client_id'][first]!r}, "
            f"sent {sent_ids[first]!r}: the answers are not in the order sent"
        )
    status = answered["status"]
    unknown = ~status.isin(WRITEBACK_LOG_STATUSES) | (status == "refused")
    if unknown.any():
        raise WritebackError(
            f"batch {batch_id}: unknown status {status[unknown].iloc[0]!r} for client {sent_ids[unknown].iloc[0]}"
        )
    conflict = status == "conflict"
    out = pd.DataFrame(
        {
            "batch_id": batch_id,
            "plan_id": plan_id,
            "action": action,
            "crm_client_id": sent_ids,
            "client_key": _none(rows["client_key"].reset_index(drop=True)),
            "owner_before": _none(rows["owner_before"].reset_index(drop=True)),
            "owner_after": _none(rows["owner_after"].reset_index(drop=True)),
            "territory_before": _none(rows["territory_before"].reset_index(drop=True)),
            "territory_after": _none(rows["territory_after"].reset_index(drop=True)),
            "etag_before": _none(rows["etag"].reset_index(drop=True)),
            # ok: the etag the write left; conflict: the record's current etag (the answer's etag_before)
            "etag_after": _none(answered["etag_after"].where(~conflict, answered["etag_before"])),
            "crm_owner": None,
            "crm_territory": None,
            "status": status.astype(object),
            "error": _none(answered["error"]),
            "logged_at": now,
        }
    )
    out["logged_at"] = pd.to_datetime(out["logged_at"], utc=True).astype("datetime64[ns, UTC]")
    return out[columns_of(CrmWritebackLog)]


def review_conflicts(out: pd.DataFrame, writer: CrmWriter) -> pd.DataFrame:
    """Read back each conflicting record: log what the CRM holds (both values kept for review).

    A record that already holds exactly the values to write (an earlier attempt whose answer was lost, or a
    CRM user who made the same change) is ``ok``: nothing is left to do for it.
    """
    for i in out.index[out["status"] == "conflict"]:  # per conflict: a read-back each, the exception not the rule
        record = writer.get_client(str(out.at[i, "crm_client_id"]))
        if record is None:
            out.loc[i, ["status", "error"]] = ["not_found", "deleted in the CRM since the plan read it"]
            continue
        owner, territory = record.get("owner_email"), record.get("territory_id")
        out.loc[i, ["crm_owner", "crm_territory", "etag_after"]] = [owner, territory, record.get("etag")]
        if (owner or "").lower() == (out.at[i, "owner_after"] or "").lower() and territory == out.at[i, "territory_after"]:
            out.loc[i, ["status", "error"]] = ["ok", "already held by the CRM (an earlier attempt, or the same edit made there)"]
        else:
            out.at[i, "error"] = (
                f"changed in the CRM since read (etag {out.at[i, 'etag_before']} -> {record.get('etag')}): "
                f"CRM holds owner {owner!r}, territory {territory!r}; not overwritten"
            )
    return out


def send_batch(rows: pd.DataFrame, batch_id: str, plan_id: str, action: str, writer: CrmWriter, journal: Journal) -> pd.DataFrame:
    """Send one batch (idempotency key from its id), log every record's outcome; the logged rows."""
    results = writer.bulk_assign(bulk_records(rows), idempotency_key(batch_id), f"batch {batch_id}")
    out = outcome_rows(rows, results, batch_id, plan_id, action, pd.Timestamp.now(tz="UTC"))
    out = review_conflicts(out, writer)
    journal.append(out)
    journal.renew()
    return out


def refused_rows(plan: pd.DataFrame, batch_id: str, now: pd.Timestamp) -> pd.DataFrame:
    """The log rows of ``plan``'s refused rows (never sent): their reason as the error."""
    refused = plan[plan["status"] == "refused"].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "batch_id": batch_id,
            "plan_id": refused["plan_id"],
            "action": "apply",
            "crm_client_id": refused["crm_client_id"],
            "client_key": refused["client_key"],
            "owner_before": refused["owner_before"],
            "owner_after": refused["owner_after"],
            "territory_before": refused["territory_before"],
            "territory_after": refused["territory_after"],
            "etag_before": refused["etag"],
            "etag_after": None,
            "crm_owner": None,
            "crm_territory": None,
            "status": "refused",
            "error": "not sent: " + refused["refusal_reason"].fillna("refused").astype(str),
            "logged_at": now,
        }
    )
    for column in out.columns.drop("logged_at"):
        out[column] = _none(out[column])
    out["logged_at"] = pd.to_datetime(out["logged_at"], utc=True).astype("datetime64[ns, UTC]")
    return out[columns_of(CrmWritebackLog)]


def apply_plan(
    plan: pd.DataFrame | Iterable[pd.DataFrame],
    journal: Journal,
    writer: CrmWriter,
    log: Log = lambda _: None,
    batch_size: int = 200,
    refused: pd.DataFrame | Iterable[pd.DataFrame] | None = None,
) -> ApplySummary:
    """Send every batch of ``plan`` the log does not hold yet, in order; refused rows are logged, never sent.

    ``plan`` is the whole plan, or its rows in order a chunk at a time (``TableStore.iter_previous``): memory is
    then bounded by a chunk and a batch, not by the plan. The refused rows are logged first, read from
    ``refused`` (a second pass over the plan's chunks) or, when it is None, from ``plan`` itself (a frame).
    """
    if refused is None and not isinstance(plan, pd.DataFrame):
        raise ValueError("a plan given in chunks is read once: pass its refused rows as a second pass (refused=...)")
    started = time.monotonic()
    summary = ApplySummary(plan_id=None)
    with journal.lock():
        done = journal.done_batches()
        refused_source = refused if refused is not None else plan
        for batch in plan_batches(refused_source, MAX_BATCH, status="refused"):
            summary.plan_id = str(batch.rows["plan_id"].iloc[0])
            if batch.batch_id in done:
                continue
            rows = refused_rows(batch.rows, batch.batch_id, pd.Timestamp.now(tz="UTC"))
            journal.append(rows)
            summary.add(rows)
            log(f"write-back: {len(rows):,} plan row(s) refused before any call (their refusal_reason says why); logged")
        for batch in plan_batches(plan, batch_size):
            plan_id = summary.plan_id = str(batch.rows["plan_id"].iloc[0])
            if batch.batch_id in done:
                summary.batches_skipped += 1
                continue
            if summary.batches_skipped and not summary.batches_sent:
                log(f"write-back: plan {plan_id}: the first {summary.batches_skipped} batch(es) are in the log already, skipped")
            rows = send_batch(batch.rows, batch.batch_id, plan_id, "apply", writer, journal)
            summary.batches_sent += 1
            summary.add(rows)
            if summary.batches_sent % 50 == 0:
                log(
                    f"write-back: {summary.batches_sent:,} batch(es) sent ({summary.records['ok']:,} ok, "
                    f"{summary.records['conflict']:,} conflict)"
                )
    if summary.plan_id is None:
        log("write-back: the plan is empty, nothing to send")
    summary.seconds = time.monotonic() - started
    log("write-back: " + summary.describe())
    return summary


def rollback_batch(batch_id: str, journal: Journal, writer: CrmWriter, log: Log = lambda _: None) -> ApplySummary:
    """Restore the owner and territory a batch's written records had before it, as its own logged batch.

    Each record is sent with the etag the batch left as ``if_match``: one changed since is a conflict, not
    clobbered. Rolling back twice sends nothing the second time.
    """
    started = time.monotonic()
    rollback_id = f"rollback-{batch_id}"
    summary = ApplySummary(plan_id=rollback_id)
    with journal.lock():
        logged = journal.read()
        if rollback_id in set(logged["batch_id"]):
            log(f"write-back: batch {batch_id} was already rolled back ({rollback_id} is in the log); nothing sent")
            summary.batches_skipped = 1
            return summary
        rows = logged[logged["batch_id"] == batch_id]
        if rows.empty:
            raise WritebackError(f"no batch {batch_id!r} in the write-back log ({journal.location}): nothing to roll back")
        written = rows[(rows["status"] == "ok") & rows["etag_after"].notna()]
        if written.empty:
            log(f"write-back: batch {batch_id} wrote no record; nothing to roll back")
            return summary
        undo = pd.DataFrame(
            {
                "crm_client_id": written["crm_client_id"],
                "client_key": written["client_key"],
                "owner_before": written["owner_after"],
                "owner_after": written["owner_before"],
                "territory_before": written["territory_after"],
                "territory_after": written["territory_before"],
                "etag": written["etag_after"],
            }
        ).reset_index(drop=True)
        out = send_batch(undo, rollback_id, rollback_id, "rollback", writer, journal)
        summary.batches_sent = 1
        summary.add(out)
    summary.seconds = time.monotonic() - started
    log("write-back rollback: " + summary.describe())
    return summary
