"""Run a job of the code location in this process, as a launched run does: outputs go to storage, none stay in memory.

``JobDefinition.execute_in_process`` keeps every output it produces until the run ends, so that its result can
answer ``output_for_node`` (a testing aid). For our jobs that is every table of the run: at a million clients
`make run` and the benchmark held ``raw_clients``, ``client_xref``, ``client_dim``, the history tables and the
rest alive to the last step, on top of what each step needs. ``dagster.execute_job`` runs the same job, with
the same in-process executor (``defs/resources.py``), and keeps nothing: each table lives in storage, where
the IO manager wrote it, as in a run the webserver or a sensor launches. Measured on the benchmark's drop (2
cores, busy): peak RSS 1,015 -> 770 MB at 100k clients, 3.5-3.7 -> 3.0 GB at 1M.

``execute_job`` takes a *reconstructable* job: a module-level function, one per job run this way, that builds
the definitions from the environment (CRM_DATA_DIR, CRM_STORAGE, CRM_API_URL), as ``dagster dev`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from crm_territory.definitions import build_definitions


def materialize_all_job() -> dg.JobDefinition:
    """``materialize_all_job`` of the definitions the environment gives (what ``make run`` executes)."""
    return build_definitions().resolve_job_def("materialize_all_job")


def drop_ingest_job() -> dg.JobDefinition:
    """``drop_ingest_job`` of the definitions the environment gives (what ``make bench`` times)."""
    return build_definitions().resolve_job_def("drop_ingest_job")


def execute(
    job: Callable[[], dg.JobDefinition],
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.JobExecutionResult:
    """Run ``job`` (one of the functions above) on ``instance`` in this process; a failed step is in the result, not raised."""
    return dg.execute_job(dg.reconstructable(job), instance=instance, run_config=run_config, tags=tags, raise_on_error=False)
