"""The drop sensor, and the automation sensor that evaluates every asset's automation condition.

The drop sensor asks for one run per tick, however many files arrived in it: a burst of drops is
one run (raw_clients re-reads the whole landing zone anyway). Each file version (name, size, mtime)
is taken once: the cursor remembers the version of every file present, and the run key is the set
of new versions, so the same burst is never run twice even if a tick is evaluated again.

A file is taken only once settled (``crm_territory.logic.ingest.settle``): unchanged for the landing
zone's settle interval, by its mtime or as seen by earlier ticks (the cursor's ``.pending`` entry keeps
when each unsettled version was first seen: a name starting with "." is never a drop). An unsettled
file is skipped, and the tick says which and why; a later tick takes it.
"""

import hashlib
import json

import dagster as dg
import pandas as pd

from crm_territory.logic.ingest.settle import split_settled
from crm_territory.resources.landing import LandingZone

PENDING = ".pending"  # cursor entry: {name: [version, first seen (ISO)]} of the files not settled yet

MAX_TAGGED_FILES = 20  # file names listed in a run's tags (the run's log lists all of them)


@dg.sensor(
    name="crm_drop_sensor",
    job_name="drop_ingest_job",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing zone; one run per tick for every new or changed file in it.",
)
def crm_drop_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult | dg.SkipReason:
    state: dict = json.loads(context.cursor) if context.cursor else {}
    pending: dict[str, list[str]] = state.pop(PENDING, {})
    seen: dict[str, str] = state
    now = pd.Timestamp.now(tz="UTC")
    files = landing.list_files()
    settled, waiting, still_pending = split_settled(files, pending, now, landing.settle_seconds)
    new = [f for f in settled if seen.get(f.name) != f.version]
    # an unsettled file keeps the version last taken, so that it is new again once its new version settles
    cursor: dict = {**{n: seen[n] for n in waiting if n in seen}, **{f.name: f.version for f in settled}}
    if still_pending:
        cursor[PENDING] = still_pending
    cursor_text = json.dumps(cursor, sort_keys=True)
    not_yet = "; ".join(f"{name} ({why})" for name, why in sorted(waiting.items()))
    if not new:
        newest = max(files, key=lambda f: f.modified_at).name if files else None
        message = f"Saw {len(files)} file(s) in {landing.describe()}, none new or changed" + (
            f" (newest: {newest})" if newest else ""
        )
        message += f". Not settled yet, taken at a later tick: {not_yet}" if waiting else ""
        if cursor == json.loads(context.cursor or "{}"):
            return dg.SkipReason(message)
        return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=cursor_text)
    versions = sorted(f.version for f in new)
    names = [f.name for f in sorted(new, key=lambda f: f.name)]
    context.log.info(f"{len(new)} new or changed drop(s), one run: {', '.join(names)}")
    if waiting:
        context.log.info(f"Not settled yet, taken at a later tick: {not_yet}")
    request = dg.RunRequest(
        run_key="drops:" + hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16],
        tags={
            "crm/drop_files": ", ".join(names[:MAX_TAGGED_FILES])
            + (f" (+{len(names) - MAX_TAGGED_FILES} more)" if len(names) > MAX_TAGGED_FILES else ""),
            "crm/drop_count": str(len(new)),
            "crm/drop_bytes": str(sum(f.size for f in new)),
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor_text)


# Evaluates the automation conditions of crm_territory.wiring.automation: the daily pull at 06:00 UTC
# and everything downstream of an updated table. Running by default, like the drop sensor.
crm_automation_sensor = dg.AutomationConditionSensorDefinition(
    "crm_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="The daily CRM API pull at 06:00 UTC and everything downstream of a table that changed.",
)
