"""Optional automation: apply the write-back plan after an activated rules change (off by default).

Applying stays an explicit act: this sensor is STOPPED until someone turns it on (Automation in the UI, or
``dg``). Once on, it asks for ``crm_writeback_job`` when a new ``crm_writeback_plan`` was computed under other
rules than the plan before it, that is, the first plan after ``activate_rules_job``, and has records to send.
A drop or a CRM pull under the same rules never triggers it. The run needs CRM_WRITE_TOKEN in its environment,
like any apply; it fails saying so without it.
"""

from __future__ import annotations

import dagster as dg

from crm_territory.defs.writeback.apply_job import crm_writeback_job

PLAN = dg.AssetKey("crm_writeback_plan")


def rules_change_to_apply(current: dict[str, object], previous: dict[str, object] | None) -> str | None:
    """Why the plan of ``current`` (a materialization's metadata values) should be applied now, or None.

    Applied: it has records to send and its rules version differs from the previous plan's (a rules
    activation placed its clients). Not applied: no previous plan (turning the sensor on never applies the
    plan already there), a plan without a rules version (no CRM snapshot), or the same rules.
    """
    version, before = current.get("rules_version"), (previous or {}).get("rules_version")
    to_send = current.get("records_to_send") or 0
    if previous is None or not version or not before or version == before or not isinstance(to_send, int) or to_send <= 0:
        return None
    return f"rules {before} -> {version}: {to_send:,} record(s) to send"


def _values(event: dg.EventLogEntry) -> dict[str, object]:
    materialization = event.asset_materialization
    return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}


@dg.asset_sensor(
    asset_key=PLAN,
    job=crm_writeback_job,
    name="crm_writeback_after_rules_activation",
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="OFF by default. When on: applies the write-back plan computed after an activated rules change "
    "(crm_writeback_job), once per plan. Plans under unchanged rules are left for an explicit apply.",
)
def crm_writeback_after_rules_activation(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    # the plan before this one (the sensor may run late: not "the latest but one", the one before this event)
    before = dg.AssetRecordsFilter(asset_key=PLAN, before_timestamp=asset_event.timestamp)
    records = context.instance.fetch_materializations(before, limit=1).records
    previous = records[0].event_log_entry if records else None
    current = _values(asset_event)
    why = rules_change_to_apply(current, _values(previous) if previous else None)
    if why is None:
        return dg.SkipReason(f"plan {current.get('plan_id') or '(empty)'}: no rules change to apply")
    context.log.info(f"write-back after a rules activation: {why}")
    return dg.RunRequest(run_key=f"writeback-{current.get('plan_id')}", tags={"crm/reason": why[:200]})
