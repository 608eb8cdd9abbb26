"""The change-feed sensor: a client edited in the CRM is re-placed within a minute, not at the next daily pull.

Every ``CRM_CHANGE_FEED_INTERVAL_SECONDS`` (30 by default) it reads the CRM's change feed
(``GET /changes?after=<cursor>``) from the cursor it keeps, and asks for one run of
``crm_api_pull_job`` for everything that arrived since: the incremental pull then takes every client
whose ``updated_at`` moved, and the star schema below it is rebuilt. The feed only says *that* the
book changed; the pull says *what* it is now, so a batch of any size is one run.

- No change: a skip, no run, and the cursor stays.
- The run key is the cursor the batch ends at, so a tick evaluated twice asks for the same run, once.
- A feed gap (HTTP 410: the cursor expired, or the CRM's log was reset) means changes were lost from
  the feed, so the incremental watermark cannot be trusted to cover them (an edit the CRM lost, a book
  regenerated with older ``updated_at`` values): the sensor asks for a full pull (``full_refresh``),
  says so in the log and the run's tags, and follows the feed from its head afterwards.
- A feed that cannot be read (CRM down, wrong token) fails the tick with the API's message; the cursor
  stays, so nothing is skipped when it is back. The daily pull at 06:00 UTC remains the safety net.

Running by default: ``make dev`` starts the mock CRM that serves the feed, and in production the
feed is what makes an edit visible within a minute; a tick with no change costs one small request.
"""

from __future__ import annotations

import dagster as dg

from crm_territory.resources.crm_api import ChangeBatch, ChangeFeedExpired, CrmApiResource
from crm_territory.settings import load_settings

MAX_TAGGED_CLIENTS = 20  # client ids listed in a run's tags (the tick's log gives the count)
FULL_REFRESH_CONFIG = {"ops": {"crm_api_clients": {"config": {"full_refresh": True}}}}


def summarise(changes: list[dict]) -> tuple[list[str], str]:
    """The distinct client ids of a batch (in feed order) and a one-line count by kind."""
    clients = list(dict.fromkeys(str(c.get("client_id")) for c in changes))
    kinds: dict[str, int] = {}
    for change in changes:
        kind = str(change.get("kind", "change"))
        kinds[kind] = kinds.get(kind, 0) + 1
    by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return clients, f"{len(changes)} change(s) to {len(clients)} client(s) ({by_kind})"


def batch_request(batch: ChangeBatch, after: str | None) -> dg.RunRequest:
    """One incremental pull for a batch of changes; keyed by where the batch ends."""
    clients, summary = summarise(batch.changes)
    listed = ", ".join(clients[:MAX_TAGGED_CLIENTS])
    return dg.RunRequest(
        run_key=f"crm-changes:{batch.cursor}",
        tags={
            "crm/change_feed": "changes",
            "crm/change_summary": summary,
            "crm/change_clients": listed
            + (f" (+{len(clients) - MAX_TAGGED_CLIENTS} more)" if len(clients) > MAX_TAGGED_CLIENTS else ""),
            "crm/change_cursor": f"{after} -> {batch.cursor}",
        },
    )


def gap_request(gap: ChangeFeedExpired, after: str | None) -> dg.RunRequest:
    """A full pull for a feed gap; keyed by the lost cursor and the head, so a re-evaluated tick asks once."""
    return dg.RunRequest(
        run_key=f"crm-changes-gap:{after}->{gap.head}",
        run_config=FULL_REFRESH_CONFIG,
        tags={
            "crm/change_feed": "gap: full pull",
            "crm/change_summary": f"change feed gap, full pull: {gap}"[:1000],
            "crm/change_cursor": f"{after} -> {gap.head}",
        },
    )


def build_change_feed_sensor(every_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="crm_change_feed_sensor",
        job_name="crm_api_pull_job",
        minimum_interval_seconds=every_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Follows the CRM's change feed every {every_seconds} s: one incremental API pull per batch of "
        "changes; a full pull when the feed has a gap.",
    )
    def crm_change_feed_sensor(context: dg.SensorEvaluationContext, crm_api: CrmApiResource) -> dg.SensorResult | dg.SkipReason:
        after = context.cursor or None
        try:
            batch = crm_api.fetch_changes(after, log=context.log.info)
        except ChangeFeedExpired as gap:
            message = f"Change feed gap: {gap}. Changes may have been lost, so this is a full pull, not an incremental one."
            context.log.warning(message)
            # no head in the answer: start again from the oldest change the feed keeps (an empty cursor)
            return dg.SensorResult(run_requests=[gap_request(gap, after)], cursor=gap.head or "")
        if not batch.changes:
            message = f"No change in the CRM since cursor {after or '(start of the feed)'}"
            if batch.cursor == after:
                return dg.SkipReason(message)
            # the first tick learns where the feed stands, without a run
            return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=batch.cursor)
        _, summary = summarise(batch.changes)
        context.log.info(
            f"{summary} since cursor {after or '(start of the feed)'}: one incremental pull"
            + (" (more are waiting: the next tick takes them)" if batch.more else "")
        )
        return dg.SensorResult(run_requests=[batch_request(batch, after)], cursor=batch.cursor)

    return crm_change_feed_sensor


@dg.definitions
def change_feed() -> dg.Definitions:
    # the interval comes from the settings of the definitions being loaded, never from an import-time read
    return dg.Definitions(sensors=[build_change_feed_sensor(load_settings().change_feed_interval_seconds)])
