"""Every resource of the code location, defined once: the same keys in every environment.

Only the implementations change with the environment (CRM_STORAGE picks CSV or Snowflake behind
``io_manager`` and ``table_store``); the environment is read when the definitions load, never at import.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.resources.landing import LocalLandingZone
from crm_territory.resources.match_decisions_file import MatchDecisionsFile
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles
from crm_territory.settings import Settings, load_settings
from crm_territory.storage.local import LocalCsvIOManager, LocalCsvTableStore
from crm_territory.storage.table_store import TableStore


def storage_resources(settings: Settings) -> dict[str, object]:
    """The ``io_manager`` and ``table_store`` of the configured back-end (keys are the same for every back-end)."""
    if settings.storage == "snowflake":
        from crm_territory.storage.snowflake import snowflake_storage_resources  # the connector loads only when used

        return snowflake_storage_resources(str(settings.data_dir), settings.lock_wait_seconds)
    data_dir = str(settings.data_dir)
    return {
        "io_manager": LocalCsvIOManager(data_dir=data_dir, lock_wait_seconds=settings.lock_wait_seconds),
        "table_store": LocalCsvTableStore(data_dir=data_dir),
    }


@contextmanager
def table_store_outside_a_run(settings: Settings) -> Iterator[TableStore]:
    """The ``table_store`` for a command outside a run (the CLI's write-back): initialised as a run would (its
    EnvVars resolved), so the Snowflake one connects with the same settings as the assets."""
    with dg.build_resources({"table_store": storage_resources(settings)["table_store"]}) as built:
        yield built.table_store


def build_resources(settings: Settings) -> dict[str, object]:
    data_dir = str(settings.data_dir)
    return {
        **storage_resources(settings),
        "landing": LocalLandingZone(data_dir=data_dir),
        "reference_files": ReferenceFiles(data_dir=data_dir),
        "rules_files": RulesFiles(data_dir=data_dir, preview_time_limit_seconds=settings.preview_time_limit_seconds),
        "match_decisions": MatchDecisionsFile(data_dir=data_dir),
        "crm_api": CrmApiResource(base_url=settings.api_url, token=dg.EnvVar("CRM_API_TOKEN")),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources=build_resources(load_settings()),
        # One process per run, steps in order. The steps share one DataFrame-heavy import (pandas, pandera,
        # pyarrow: ~2-3 s per process on this 2-core machine), which the multiprocess executor pays for
        # every step and check: 53 s against a few seconds for the sample drop. Parallelism inside a run
        # buys nothing here; runs still run side by side.
        executor=dg.in_process_executor,
    )
