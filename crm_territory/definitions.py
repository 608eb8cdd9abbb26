"""The Dagster code location. The environment is read inside ``defs()``, never at import time."""


import dagster as dg

from crm_territory.defs.automation import (
    crm_api_pull_job,
    crm_drop_sensor,
    preview_rules_job,
    daily_crm_api_pull,
    drop_ingest_job,
    materialize_all_job,
)
from crm_territory.defs.checks import integrity_checks, schema_checks
from crm_territory.defs.core import advisor_dim, assignments_fact, client_dim, territory_dim
from crm_territory.defs.ingest import crm_api_advisors, crm_api_clients, raw_clients
from crm_territory.defs.matching import client_xref
from crm_territory.defs.history import assignments_fact_history, client_dim_history
from crm_territory.defs.rules import activate_rules_job, assignments_preview, territory_rules
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.resources.landing import LocalLandingZone
from crm_territory.resources.match_decisions import MatchDecisionsFile
from crm_territory.resources.reference import ReferenceFiles
from crm_territory.resources.rules import RulesFiles
from crm_territory.resources.storage import storage_resources
from crm_territory.settings import Settings


ALL_ASSETS = [
    crm_api_clients,
    crm_api_advisors,
    raw_clients,
    client_xref,
    client_dim,
    territory_rules,
    territory_dim,
    advisor_dim,
    assignments_fact,
    client_dim_history,
    assignments_fact_history,
    assignments_preview,
]


def build_resources(settings: Settings) -> dict[str, object]:
    """The same keys in every environment; only their implementations change with CRM_STORAGE."""
    data_dir = str(settings.data_dir)
    return {
        **storage_resources(settings),
        "landing": LocalLandingZone(data_dir=data_dir),
        "reference_files": ReferenceFiles(data_dir=data_dir),
        "rules_files": RulesFiles(data_dir=data_dir),
        "match_decisions": MatchDecisionsFile(data_dir=data_dir),
        "crm_api": CrmApiResource(base_url=settings.api_url, token=dg.EnvVar("CRM_API_TOKEN")),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=[*schema_checks, *integrity_checks],
        jobs=[materialize_all_job, drop_ingest_job, crm_api_pull_job, preview_rules_job, activate_rules_job],
        sensors=[crm_drop_sensor],
        schedules=[daily_crm_api_pull],
        resources=build_resources(settings),
        # One process per run, steps in order. The steps share one DataFrame-heavy import (pandas, pandera,
        # pyarrow: ~2-3 s per process on this 2-core machine), which the multiprocess executor pays for
        # every step and check: 53 s against a few seconds for the sample drop. Parallelism inside a run
        # buys nothing here; runs still run side by side.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
