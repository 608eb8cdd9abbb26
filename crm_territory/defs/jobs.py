"""The jobs: what `make run`, the drop sensor, the change-feed sensor (an API pull) and the rules preview each execute."""

import dagster as dg

# The rules in force are re-validated on every run that places clients; the preview runs on its own.
_RULES = dg.AssetSelection.assets("territory_rules")
_PREVIEW = dg.AssetSelection.assets("assignments_preview")

drop_ingest_job = dg.define_asset_job(
    name="drop_ingest_job",
    selection=(dg.AssetSelection.assets("raw_clients").downstream() | _RULES).required_multi_asset_neighbors() - _PREVIEW,
    description="Re-read every landing drop into raw_clients and rebuild the star schema below it, with its checks.",
)
crm_api_pull_job = dg.define_asset_job(
    name="crm_api_pull_job",
    selection=(
        dg.AssetSelection.assets("crm_api_clients", "crm_api_advisors").downstream() | _RULES
    ).required_multi_asset_neighbors()
    - _PREVIEW,
    description="Pull the CRM API incrementally and rebuild everything below it, with its checks (what the change-feed "
    "sensor runs for a batch of CRM changes; the daily automation pulls the same assets).",
)
preview_rules_job = dg.define_asset_job(
    name="preview_rules_job",
    selection=_PREVIEW,
    description="Preview the candidate rules (rules/candidate/territory_rules.yaml) against the current tables; nothing moves.",
)
materialize_all_job = dg.define_asset_job(
    name="materialize_all_job",
    selection=dg.AssetSelection.all(),
    description="Every asset and check: the CRM API pull, the drops, the star schema. What `make run` executes.",
)
