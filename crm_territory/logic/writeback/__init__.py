"""Write-back of the assignments to the CRM: the plan (a diff), its batches, applying them, the log, rollback.

- ``plan.build_plan``: the CRM's current owner/territory/etag per record vs. the current PRIMARY assignments.
- ``batches``: the plan's sendable rows in order, 200 to a batch, each with a deterministic idempotency key.
- ``client.CrmWriter``: ``POST /clients/bulk-assign`` with retries (5xx, timeouts, dropped connections, 429).
- ``journal.WritebackJournal``: the append-only ``crm_writeback_log``, one append per answered batch.
- ``apply.apply_plan`` / ``apply.rollback_batch``: the acts, resumable from the log.
"""
