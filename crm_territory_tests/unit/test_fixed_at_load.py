"""A run's config cannot move the CRM API, its token or the data folder (issue 10, finding 3).

The probe's run config pointed ``resources.crm_api.config.base_url`` at its own server (which received the
real bearer token) and ``io_manager.config.data_dir`` at another folder. These tests build the real
definitions and run real jobs in process; the GraphQL launch through ``dg dev`` is in
``integration/test_run_config_redirects.py``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.resources.fixed_at_load import DESTINATION_FIELDS, redirects_in
from crm_territory.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# What a run's config may still set, resource by resource: tunables, never a destination.
# The token stays in the schema (Dagster resolves its EnvVar) and is refused at run start if changed.
RUN_CONFIGURABLE = {
    "crm_api": {"page_size", "timeout_seconds", "max_retries", "backoff_seconds", "token"},
    "io_manager": {"lock_wait_seconds"},
    "rules_files": {"preview_time_limit_seconds"},
}


def resource_config_fields(job: dg.JobDefinition) -> dict[str, set[str]]:
    resources = job.run_config_schema.config_type.fields["resources"].config_type  # type: ignore[attr-defined]
    fields: dict[str, set[str]] = {}
    for key, field in resources.fields.items():
        config = field.config_type.fields.get("config")
        fields[key] = set(config.config_type.fields) if config is not None else set()
    return fields


@pytest.fixture
def settings(data_dir: Path, monkeypatch) -> Settings:
    monkeypatch.setenv("CRM_API_TOKEN", "the-real-token-xyz")
    return Settings(data_dir=data_dir.resolve(), storage="local", api_url="http://127.0.0.1:9")


# --------------------------------------------------------------------------- the pure rule


def test_redirects_in_names_every_fixed_field_a_run_config_changes():
    configured = {
        "io_manager": {"data_dir": "/srv/data", "lock_wait_seconds": 300},
        "crm_api": {"token": {"env": "CRM_API_TOKEN"}},
    }
    run_config = {
        "resources": {
            "crm_api": {"config": {"base_url": "http://evil.example", "token": {"env": "CRM_API_TOKEN"}, "page_size": 10}},
            "io_manager": {"config": {"data_dir": "/tmp/elsewhere", "lock_wait_seconds": 1}},
            "landing": {"config": {"data_dir": "/srv/data"}},  # no configured value known: any value is refused
            "table_store": "not a mapping",
        },
        "ops": {"client_dim": {"config": {"data_dir": "ops config is not a resource's"}}},
    }
    assert redirects_in(run_config, configured) == [
        "resources.crm_api.config.base_url",
        "resources.io_manager.config.data_dir",
        "resources.landing.config.data_dir",
    ]


def test_repeating_the_configured_value_is_not_a_redirect():
    configured = {"io_manager": {"data_dir": "/srv/data"}, "crm_api": {"token": {"env": "CRM_API_TOKEN"}}}
    same = {
        "resources": {
            "io_manager": {"config": {"data_dir": "/srv/data"}},
            "crm_api": {"config": {"token": {"env": "CRM_API_TOKEN"}}},
        }
    }
    assert redirects_in(same, configured) == []
    other_secret = {"resources": {"crm_api": {"config": {"token": {"env": "SNOWFLAKE_PASSWORD"}}}}}
    assert redirects_in(other_secret, configured) == ["resources.crm_api.config.token"]
    assert redirects_in({}, configured) == [] and redirects_in({"resources": None}, configured) == []


# --------------------------------------------------------------------------- the run-config schema


def test_no_destination_is_in_any_jobs_run_config_schema(settings):
    defs = build_definitions(settings)
    jobs = ["materialize_all_job", "drop_ingest_job", "crm_api_pull_job", "preview_rules_job"]
    for name in jobs:
        fields = resource_config_fields(defs.resolve_job_def(name))
        for key, names in fields.items():
            leftover = names & set(DESTINATION_FIELDS)
            assert not leftover, f"{name}: resources.{key}.config still offers {leftover} to a run's config"
            allowed = RUN_CONFIGURABLE.get(key, set())
            assert names <= allowed, f"{name}: resources.{key}.config offers {names - allowed}; is it a destination or a secret?"


def test_dagster_refuses_a_moved_api_before_any_run_exists(settings, capture):
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    probe = {"resources": {"crm_api": {"config": {"base_url": capture.url, "token": {"env": "CRM_API_TOKEN"}}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "base_url" at path root:resources:crm_api'):
        defs.resolve_job_def("crm_api_pull_job").execute_in_process(instance=instance, run_config={**QUIET, **probe})
    assert capture.requests == []
    assert instance.get_runs() == []  # refused before a run was created


@pytest.mark.parametrize("key", ["landing", "reference_files", "rules_files", "match_decisions", "table_store"])
def test_dagster_refuses_a_moved_data_folder_on_every_file_resource(settings, tmp_path, key):
    defs = build_definitions(settings)
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entry "data_dir" at path root:resources:{key}'):
        defs.resolve_job_def("materialize_all_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config={**QUIET, "resources": {key: {"config": {"data_dir": str(elsewhere)}}}},
        )
    assert not elsewhere.exists()


def test_the_resource_keeps_the_values_it_was_built_with():
    api = CrmApiResource(base_url="http://127.0.0.1:8765", token=dg.EnvVar("CRM_API_TOKEN"), page_size=50)
    assert api.base_url == "http://127.0.0.1:8765" and api.page_size == 50
    schema = api.get_resource_definition().config_schema
    assert "base_url" not in schema.config_type.fields  # type: ignore[attr-defined]
    assert schema.default_value == {"token": {"env": "CRM_API_TOKEN"}, "page_size": 50}


# --------------------------------------------------------------------------- refused when the run's resources start


def _move_the_tables(settings: Settings, elsewhere: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return (
        build_definitions(settings)
        .resolve_job_def("drop_ingest_job")
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config={**QUIET, "resources": {"io_manager": {"config": {"data_dir": str(elsewhere), "lock_wait_seconds": 1}}}},
            **kwargs,
        )
    )


def test_a_moved_io_manager_folder_is_refused_before_any_run_exists(settings, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    before = sorted(p.relative_to(settings.data_dir) for p in settings.data_dir.rglob("*"))
    with pytest.raises(
        dg.DagsterInvalidConfigError, match='unexpected config entry "data_dir" at path root:resources:io_manager'
    ):
        _move_the_tables(settings, elsewhere)
    assert not elsewhere.exists()  # not even the writer lock's folder
    assert sorted(p.relative_to(settings.data_dir) for p in settings.data_dir.rglob("*")) == before


def test_another_secret_as_the_token_fails_the_run_before_any_request(settings, capture, monkeypatch):
    settings = Settings(data_dir=settings.data_dir, storage="local", api_url=capture.url)
    monkeypatch.setenv("SOME_OTHER_SECRET", "not-for-the-crm")
    defs = build_definitions(settings)
    result = defs.resolve_job_def("crm_api_pull_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={**QUIET, "resources": {"crm_api": {"config": {"token": {"env": "SOME_OTHER_SECRET"}}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert any("resources.crm_api.config.token" in str(e.event_specific_data) for e in result.all_events)
    assert capture.requests == []


def test_a_run_config_repeating_the_configured_values_runs(settings, capture):
    settings = Settings(data_dir=settings.data_dir, storage="local", api_url=capture.url)
    defs = build_definitions(settings)
    same = {
        "crm_api": {"config": {"token": {"env": "CRM_API_TOKEN"}, "page_size": 100}},
        "io_manager": {"config": {"lock_wait_seconds": 5}},
    }
    result = defs.resolve_job_def("crm_api_pull_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config={**QUIET, "resources": same}, raise_on_error=False
    )
    assert result.success
    assert {r.path.split("?")[0] for r in capture.requests} >= {"/clients"}
    assert {r.authorization for r in capture.requests} == {"Bearer the-real-token-xyz"}  # the configured API, the real token
