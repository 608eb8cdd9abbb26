"""Jobs, the drop sensor and the daily CRM API schedule.

The sensor requests one run per new or changed landing file (run_key = name:size:mtime, so the
same file version is never run twice, even if the cursor were lost); the run rebuilds
raw_clients and everything downstream of it, checks included.
"""


import json

import dagster as dg

from crm_territory.resources.landing import LandingZone

# Drops (and anything that changes raw_clients) refresh raw_clients and the star schema below it.
drop_ingest_job = dg.define_asset_job(
    name="drop_ingest_job",
    # the rules are re-validated on every run (they decide where the clients go); previews run on their own
    selection=(
        dg.AssetSelection.assets("raw_clients").downstream() | dg.AssetSelection.assets("territory_rules")
    ).required_multi_asset_neighbors()
    - dg.AssetSelection.assets("assignments_preview"),
    description="Re-read every landing drop into raw_clients and rebuild the star schema below it, with its checks.",
)
crm_api_pull_job = dg.define_asset_job(
    name="crm_api_pull_job",
    selection=(
        dg.AssetSelection.assets("crm_api_clients", "crm_api_advisors").downstream() | dg.AssetSelection.assets("territory_rules")
    ).required_multi_asset_neighbors()
    - dg.AssetSelection.assets("assignments_preview"),
    description="Pull the CRM API incrementally and rebuild everything below it, with its checks.",
)
preview_rules_job = dg.define_asset_job(
    name="preview_rules_job",
    selection=dg.AssetSelection.assets("assignments_preview"),
    description="Preview the candidate rules (rules/candidate/territory_rules.yaml) against the current tables; nothing moves.",
)
materialize_all_job = dg.define_asset_job(
    name="materialize_all_job",
    selection=dg.AssetSelection.all(),
    description="Every asset and check: the CRM API pull, the drops, the star schema. What `make run` executes.",
)


@dg.sensor(
    name="crm_drop_sensor",
    job=drop_ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing zone; one run per new or changed file.",
)
def crm_drop_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    files = landing.list_files()
    new = [f for f in files if seen.get(f.name) != f.version]
    if not new:
        newest = max(files, key=lambda f: f.modified_at).name if files else None
        return dg.SkipReason(
            f"Saw {len(files)} file(s) in {landing.describe()}, none new or changed"
            + (f" (newest: {newest})" if newest else "")
        )
    requests = [
        dg.RunRequest(run_key=f.version, tags={"crm/drop_file": f.name, "crm/drop_size": str(f.size)})
        for f in new
    ]
    context.log.info(f"New or changed drops: {', '.join(f.name for f in new)}")
    # The cursor remembers the version of every file present; the run key makes "exactly once" hold even if
    # the cursor is reset (Dagster never launches two runs with the same run key for a sensor).
    cursor = {f.name: f.version for f in files}
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


daily_crm_api_pull = dg.ScheduleDefinition(
    name="daily_crm_api_pull",
    job=crm_api_pull_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: incremental pull from the CRM API, then the star schema.",
)
