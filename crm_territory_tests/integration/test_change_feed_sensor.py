"""The change-feed sensor against the real mock CRM over HTTP, on a real Dagster instance.

A client's region is changed through the mock CRM's write endpoint, the real sensor (from the loaded
definitions, with their real resources) is evaluated, and the run it asks for is executed: the client
must end up in the territory of its new region in assignments_fact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings, SettingsError
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, materialized
from crm_territory_tests.support.mock_api_server import TEST_TOKEN
from crm_territory_tests.support.mock_crm_writes import run_writable_mock_api, set_fields

pytestmark = pytest.mark.integration

INTERVAL_VARIABLE = "CRM_CHANGE_FEED_INTERVAL_SECONDS"
SENSOR = "crm_change_feed_sensor"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real instance on disk (SQLite run, event and schedule storage), thrown away after the test."""
    with dg.instance_for_test() as instance:
        yield instance


def settings_for(monkeypatch: pytest.MonkeyPatch, data_dir: Path, url: str) -> Settings:
    monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_API_URL", url)
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)
    return Settings.from_env()


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation of the real sensor with the definitions' own resources."""
    sensor = defs.resolve_sensor_def(SENSOR)
    # the resources the sensor asks for, as the daemon gives them (not the IO manager: it would take the folder's lock)
    resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        return sensor.evaluate_tick(context)


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The run a sensor asked for: its job, its run config and its tags."""
    job = defs.resolve_job_def(defs.resolve_sensor_def(SENSOR).job_name)
    return job.execute_in_process(
        instance=instance, run_config={**QUIET, **request.run_config}, tags=request.tags, raise_on_error=False
    )


def current_territory(data_dir: Path, client_id: str) -> str:
    store = CsvTables(data_dir)
    xref = store.read("client_xref")
    key = xref.loc[(xref["source_system"] == "crm_api") & (xref["source_record_id"] == client_id), "client_key"]
    assert len(key) == 1, client_id
    fact = store.read("assignments_fact")
    row = fact[(fact["client_key"] == key.iloc[0]) & fact["is_current"] & (fact["assignment_type"] == "PRIMARY")]
    assert len(row) == 1, row
    return str(row["territory_id"].iloc[0])


def a_placed_client(data_dir: Path) -> tuple[str, str, str]:
    """An active API client that is a client on its own (one source record), in a region's territory: (id, region, territory)."""
    store = CsvTables(data_dir)
    xref, clients = store.read("client_xref"), store.read("client_dim")
    fact = store.read("assignments_fact")
    alone = clients[(clients["source_record_count"] == 1) & clients["is_active"]]
    api = xref[(xref["source_system"] == "crm_api") & xref["client_key"].isin(alone["client_key"])]
    current = fact[fact["is_current"] & (fact["assignment_type"] == "PRIMARY") & (fact["territory_id"] != "UNASSIGNED")]
    placed = api.merge(current, on="client_key").merge(alone[["client_key", "region"]], on="client_key")
    row = placed[placed["region"] == "Northeast"].sort_values("source_record_id").iloc[0]
    return str(row["source_record_id"]), str(row["region"]), str(row["territory_id"])


def test_a_region_changed_in_the_crm_re_places_the_client(monkeypatch, data_dir, instance):
    with run_writable_mock_api(clients=300) as url:
        settings = settings_for(monkeypatch, data_dir, url)
        defs = build_definitions(settings)
        assert defs.resolve_job_def("materialize_all_job").execute_in_process(instance=instance, run_config=QUIET).success

        # first tick: nothing changed yet; the sensor learns where the feed stands, and asks for no run
        first = tick(defs, instance, None)
        assert first.run_requests == [] and "No change" in (first.skip_message or "")
        start = first.cursor
        assert start

        client_id, region, territory = a_placed_client(data_dir)
        assert current_territory(data_dir, client_id) == territory
        changed = set_fields(url, client_id, region="W")  # the CRM's own short spelling of West
        assert changed.status_code == 200 and changed.json()["change"]["fields"]["region"]["from"] == region

        second = tick(defs, instance, start)
        assert len(second.run_requests) == 1
        request = second.run_requests[0]
        assert request.job_name in (None, "crm_api_pull_job")
        assert request.tags["crm/change_feed"] == "changes"
        assert request.tags["crm/change_clients"] == client_id
        assert "1 change(s) to 1 client(s) (1 update)" in request.tags["crm/change_summary"]
        assert "full_refresh" not in str(request.run_config)  # incremental
        assert second.cursor != start
        # the same tick evaluated again asks for the same run (same run key): it is run once
        assert tick(defs, instance, start).run_requests[0].run_key == request.run_key

        result = execute(defs, instance, request)
        assert result.success
        assert {"crm_api_clients", "raw_clients", "client_dim", "assignments_fact"} <= materialized(result)
        pulled = next(
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == "crm_api_clients"
        )
        assert pulled["updated_since"].value != "full pull"  # an incremental pull took the change
        new_territory = current_territory(data_dir, client_id)
        assert new_territory != territory
        assert new_territory.startswith("WES_") and new_territory[3:] == territory[3:]  # same segment, new region

        # nothing changed since: a skip, no run, the cursor stays
        third = tick(defs, instance, second.cursor)
        assert third.run_requests == [] and "No change" in (third.skip_message or "")
        assert third.cursor in (None, second.cursor)


def test_an_expired_cursor_asks_for_a_full_pull_and_says_so(monkeypatch, data_dir, instance):
    with run_writable_mock_api(clients=300, change_log_size=2) as url:
        settings = settings_for(monkeypatch, data_dir, url)
        defs = build_definitions(settings)
        assert defs.resolve_job_def("materialize_all_job").execute_in_process(instance=instance, run_config=QUIET).success
        start = tick(defs, instance, None).cursor
        for client_id in ("100001", "100002", "100003"):  # three changes, two kept: the first is lost from the feed
            assert set_fields(url, client_id, segment="Retail", region="West").status_code == 200

        gap = tick(defs, instance, start)
        assert len(gap.run_requests) == 1
        request = gap.run_requests[0]
        assert request.run_config == {"ops": {"crm_api_clients": {"config": {"full_refresh": True}}}}
        assert request.tags["crm/change_feed"] == "gap: full pull"
        assert "expired" in request.tags["crm/change_summary"] and "full pull" in request.tags["crm/change_summary"]
        # the sensor goes on from the feed's head: the full pull covers everything before it
        after = tick(defs, instance, gap.cursor)
        assert after.run_requests == [] and "No change" in (after.skip_message or "")

        result = execute(defs, instance, request)
        assert result.success
        pulled = next(
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == "crm_api_clients"
        )
        assert pulled["updated_since"].value == "full pull" and pulled["records_pulled"].value == 300
        snapshot = CsvTables(data_dir).read("crm_api_clients").set_index("client_id")
        assert (snapshot.loc[["100001", "100002", "100003"], "region"] == "West").all()


def test_an_unreachable_crm_fails_the_tick_saying_so(monkeypatch, data_dir, instance):
    settings = settings_for(monkeypatch, data_dir, "http://127.0.0.1:9")
    defs = build_definitions(settings)
    # a failed tick returns no cursor, so the daemon keeps the old one: the changes wait for the CRM to be back
    with pytest.raises(Exception, match=r"/changes after 'abc\.3' still failed after 4 retries"):
        tick(defs, instance, "abc.3")


def test_the_interval_comes_from_the_environment_when_the_definitions_load(monkeypatch, data_dir):
    settings = settings_for(monkeypatch, data_dir, "http://127.0.0.1:9")
    assert settings.change_feed_interval_seconds == 30
    assert build_definitions(settings).resolve_sensor_def(SENSOR).minimum_interval_seconds == 30
    for bad in ("0", "-3", "1.5", "soon"):
        monkeypatch.setenv(INTERVAL_VARIABLE, bad)
        with pytest.raises(SettingsError, match=INTERVAL_VARIABLE):
            Settings.from_env()
    monkeypatch.setenv(INTERVAL_VARIABLE, " 12 ")  # set after the import: read when the definitions load
    sensor = build_definitions(Settings.from_env()).resolve_sensor_def(SENSOR)
    assert sensor.minimum_interval_seconds == 12
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "crm_api_pull_job"
