"""The registry and history guards know where the data lives (CSV storage; fakesnow's are in test_snowflake_storage).

One Dagster instance on disk is shared by runs on two data folders, as ``make run`` shares ``.dagster_home``
whatever CRM_DATA_DIR says. A stored table that is missing is refused only when *this* folder published it:
its ``published.json`` says so, or the instance remembers a run that succeeded at this location.
"""

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings
from crm_territory.storage.csv_set import PUBLISHED_MANIFEST, CsvTableSet
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, REPO_ROOT, error_text, materialized

pytestmark = pytest.mark.integration

MOCK_API_BOOK = {"clients": 100, "seed": 3}
STORAGE_LOCATION = "crm/storage_location"  # the metadata key, a contract with the UI and operators
GUARDED = ("territory_dim", "client_dim_history", "assignments_fact_history")


def on_disk(home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


@pytest.fixture
def instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    """A real instance on disk (sqlite run and event storage), like the repo's .dagster_home."""
    with on_disk(tmp_path / "dagster_home") as instance:
        yield instance


@pytest.fixture
def folders(pipeline_env, tmp_path) -> tuple[Settings, Settings]:
    """Two data folders with the committed inputs: the fixture's, and a second, fresh one."""
    other = tmp_path / "second" / "data"
    for inputs in ("landing", "reference", "rules", "matching"):
        shutil.copytree(REPO_ROOT / "data" / inputs, other / inputs)
    return pipeline_env, dataclasses.replace(pipeline_env, data_dir=other)


def run(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def("drop_ingest_job")
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)


def refusals(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key or "": error_text(e) for e in result.all_events if e.is_step_failure}


def delete_outputs(data_dir: Path, manifest_too: bool) -> None:
    for layer in ("raw", "core", "quarantine"):
        shutil.rmtree(data_dir / layer, ignore_errors=True)
    if manifest_too:
        (data_dir / PUBLISHED_MANIFEST).unlink()


def test_a_fresh_folder_on_an_instance_that_ran_on_another_folder_starts_cleanly(folders, instance):
    first, second = folders
    assert run(first, instance).success
    result = run(second, instance)
    assert refusals(result) == {}
    assert result.success
    store = CsvTables(second.data_dir)
    assert all(store.exists(table) for table in GUARDED)
    # each materialization says where its table went: the folder's resolved path, nothing else
    for event in result.get_asset_materialization_events():
        recorded = event.materialization.metadata[STORAGE_LOCATION].value
        assert recorded == f"csv:{second.data_dir.resolve()}", event.asset_key


def test_the_same_folder_with_its_registry_deleted_is_refused_naming_its_own_run(folders, instance):
    first, second = folders
    own = run(first, instance)
    assert own.success
    assert run(second, instance).success  # the instance's latest territory_dim is now the other folder's
    store = CsvTables(first.data_dir)
    for table in GUARDED:
        store.path_for(table).unlink()
    result = run(first, instance)
    said = refusals(result)
    # the message a vanished registry always had, naming the run that published *this* folder's table
    assert f"run {own.run_id[:8]} published 4 rows" in said["territory_dim"]
    assert "reissue_territory_ids" in said["territory_dim"]
    assert f"run {own.run_id[:8]} published" in said["client_dim_history"]
    assert not store.exists("territory_dim")  # the failed run published nothing


def test_everything_deleted_but_published_json_is_refused_even_by_an_instance_that_never_saw_the_folder(
    folders, instance, tmp_path
):
    first, _ = folders
    own = run(first, instance)
    assert own.success
    delete_outputs(first.data_dir, manifest_too=False)
    # the folder's own record is the witness: on the instance that published, the same message as ever ...
    said = refusals(run(first, instance))
    assert f"run {own.run_id[:8]} published 4 rows" in said["territory_dim"]
    # ... and on an instance that never saw the folder (a new DAGSTER_HOME), refused all the same
    with on_disk(tmp_path / "another_home") as stranger:
        said = refusals(run(first, stranger))
    assert f"run {own.run_id[:8]} published its rows" in said["territory_dim"]
    assert PUBLISHED_MANIFEST in said["territory_dim"] and "reissue_territory_ids" in said["territory_dim"]
    assert f"run {own.run_id[:8]} published its rows" in said["client_dim_history"]


def test_outputs_and_published_json_deleted_are_refused_by_the_instances_history_of_this_folder(folders, instance):
    first, second = folders
    own = run(first, instance)
    assert own.success
    assert run(second, instance).success
    delete_outputs(first.data_dir, manifest_too=True)
    said = refusals(run(first, instance))
    assert f"run {own.run_id[:8]} published 4 rows" in said["territory_dim"]
    assert f"run {own.run_id[:8]} published" in said["client_dim_history"]


def break_assignments_history(data_dir: Path) -> None:
    """A file that is not a history: assignments_fact_history, which runs after territory_dim, fails reading it."""
    path = CsvTables(data_dir).path_for("assignments_fact_history")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not,a,history\n1,2,3\n")


def test_a_run_that_failed_after_staging_the_registry_does_not_make_the_next_run_refuse(folders, instance):
    _, fresh = folders
    break_assignments_history(fresh.data_dir)
    failed = run(fresh, instance)
    assert not failed.success
    assert set(refusals(failed)) == {"assignments_fact_history"}
    assert {"territory_dim", "client_dim_history"} <= materialized(failed)  # recorded by Dagster ...
    assert not CsvTables(fresh.data_dir).exists("territory_dim")  # ... never published
    assert CsvTableSet(fresh.data_dir).manifest() == {}
    CsvTables(fresh.data_dir).path_for("assignments_fact_history").unlink()  # the operator removes the bad file
    result = run(fresh, instance)
    assert refusals(result) == {}
    assert result.success


def test_a_failed_run_is_not_the_witness_a_successful_run_of_the_same_folder_is(folders, instance):
    first, _ = folders
    own = run(first, instance)
    assert own.success
    break_assignments_history(first.data_dir)
    failed = run(first, instance)  # its territory_dim materialization is the newest, and was never published
    assert set(refusals(failed)) == {"assignments_fact_history"} and "territory_dim" in materialized(failed)
    delete_outputs(first.data_dir, manifest_too=True)
    said = refusals(run(first, instance))
    assert f"run {own.run_id[:8]} published 4 rows" in said["territory_dim"]
