"""Tests of the Dagster code location: what ``crm_territory.definitions.defs()`` declares.

Everything runs against a throw-away copy of the committed inputs (``data/landing`` and
``data/reference``), pointed to by CRM_DATA_DIR, so no test writes into the checkout.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ASSETS = {
    "crm_api_clients",
    "raw_clients",
    "quarantined_clients",
    "ingest_manifest",
    "client_xref",
    "client_matches",
    "client_key_retirements",
    "match_model",
    "client_dim",
    "territory_dim",
    "assignments_fact",
    "crm_api_advisors",
    "advisor_dim",
    "territory_rules",
    "client_dim_history",
    "assignments_fact_history",
    "assignments_preview",
    "crm_writeback_plan",
    "crm_outbound_plan",
}
# the asset groups are the domains of crm_territory/defs/
GROUPS = {
    "sources": {"crm_api_clients", "crm_api_advisors", "raw_clients", "quarantined_clients", "ingest_manifest"},
    "matching": {"client_xref", "client_matches", "client_key_retirements", "match_model", "client_dim"},
    "placement": {"territory_dim", "advisor_dim", "assignments_fact"},
    "rules": {"territory_rules", "assignments_preview"},
    "history": {"client_dim_history", "assignments_fact_history"},
    "writeback": {"crm_writeback_plan", "crm_outbound_plan"},
}
# (upstream, downstream)
EXPECTED_EDGES = {
    ("crm_api_clients", "raw_clients"),
    ("raw_clients", "client_xref"),
    ("raw_clients", "client_matches"),
    ("raw_clients", "match_model"),
    ("client_xref", "client_dim"),
    ("client_key_retirements", "client_dim"),
    ("client_dim", "territory_dim"),
    ("territory_dim", "assignments_fact"),
    ("client_dim", "assignments_fact"),
    ("crm_api_advisors", "advisor_dim"),
    ("territory_dim", "advisor_dim"),
    ("territory_rules", "territory_dim"),
    ("territory_rules", "assignments_fact"),
    ("advisor_dim", "assignments_fact"),
    ("client_dim", "client_dim_history"),
    ("assignments_fact", "assignments_fact_history"),
    ("assignments_fact", "assignments_preview"),
    ("assignments_fact", "crm_writeback_plan"),
    ("client_xref", "crm_writeback_plan"),
    ("advisor_dim", "crm_writeback_plan"),
    ("crm_api_clients", "crm_writeback_plan"),
    ("raw_clients", "crm_outbound_plan"),
    ("client_xref", "crm_outbound_plan"),
    ("assignments_fact", "crm_outbound_plan"),
    ("advisor_dim", "crm_outbound_plan"),
}
EXPECTED_RESOURCE_KEYS = {"io_manager", "table_store", "landing", "reference_files", "rules_files", "match_decisions", "crm_api"}
EXPECTED_JOBS = {
    "materialize_all_job",
    "drop_ingest_job",
    "crm_api_pull_job",
    "preview_rules_job",
    "activate_rules_job",
    "crm_writeback_job",
}
EXPECTED_SENSORS = {
    "crm_drop_sensor",
    "crm_automation_sensor",
    "crm_change_feed_sensor",
    "crm_writeback_after_rules_activation",
}
ENV_VARS = ("CRM_DATA_DIR", "CRM_STORAGE", "CRM_API_URL", "CRM_API_TOKEN")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A tmp data folder holding copies of the committed inputs (landing/ and reference/)."""
    target = tmp_path / "data"
    for sub in ("landing", "reference", "rules"):
        shutil.copytree(REPO_ROOT / "data" / sub, target / sub)
    return target


@pytest.fixture
def crm_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    """A clean CRM_* environment with CRM_DATA_DIR on the tmp copy and the default storage."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture
def loaded_defs(crm_env: Path) -> dg.Definitions:
    from crm_territory.definitions import defs

    return defs()


def _specs_by_name(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def _edges(defs: dg.Definitions) -> set[tuple[str, str]]:
    return {(dep.asset_key.to_user_string(), name) for name, spec in _specs_by_name(defs).items() for dep in spec.deps}


def test_defs_declares_the_expected_assets(loaded_defs: dg.Definitions) -> None:
    assert set(_specs_by_name(loaded_defs)) == EXPECTED_ASSETS


def test_lineage_edges(loaded_defs: dg.Definitions) -> None:
    edges = _edges(loaded_defs)
    missing = EXPECTED_EDGES - edges
    assert not missing, f"missing lineage edges {sorted(missing)}; declared: {sorted(edges)}"

    parents: dict[str, set[str]] = {name: set() for name in EXPECTED_ASSETS}
    for upstream, downstream in edges:
        parents[downstream].add(upstream)
    # The star schema reads only what the lineage says, and the API snapshot is a source.
    assert parents["client_xref"] == {"raw_clients"}
    assert parents["client_dim"] == {"raw_clients", "client_xref", "client_key_retirements"}
    assert parents["territory_dim"] == {"client_dim", "territory_rules"}
    assert parents["assignments_fact"] == {"client_dim", "territory_dim", "advisor_dim", "territory_rules"}
    assert parents["territory_rules"] == set()  # read from the rules file
    assert parents["crm_api_clients"] == set()
    assert parents["advisor_dim"] == {"crm_api_advisors", "territory_dim"}


def test_every_asset_has_group_owners_kinds_and_a_grain(loaded_defs: dg.Definitions) -> None:
    problems = []
    for name, spec in sorted(_specs_by_name(loaded_defs).items()):
        expected_group = next(group for group, names in GROUPS.items() if name in names)
        if spec.group_name != expected_group:
            problems.append(f"{name}: group {spec.group_name!r}, expected {expected_group!r}")
        if not spec.owners:
            problems.append(f"{name}: no owners")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        description = spec.description or ""
        if "\n\nGrain: one row per" not in description:
            problems.append(f"{name}: description does not state the grain: {spec.description!r}")
        if not spec.code_version:
            problems.append(f"{name}: no code_version")
    assert not problems, "\n".join(problems)
    assert set().union(*GROUPS.values()) == EXPECTED_ASSETS


def test_every_column_has_a_type_and_a_description_in_the_ui(loaded_defs: dg.Definitions) -> None:
    """The column schema Dagster shows comes from the Pandera model: every column, typed and described."""
    from crm_territory.schemas import TABLES

    for name, spec in _specs_by_name(loaded_defs).items():
        schema = spec.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == list(TABLES[name].model.to_schema().columns), name
        undescribed = [c.name for c in schema.columns if not (c.description and c.description.strip())]
        assert undescribed == [], f"{name}: columns without a description: {undescribed}"
        assert all(c.type for c in schema.columns), name


def test_every_asset_has_a_blocking_schema_check(loaded_defs: dg.Definitions) -> None:
    graph = loaded_defs.resolve_asset_graph()
    blocking: dict[str, set[str]] = {name: set() for name in EXPECTED_ASSETS}
    for check_key in graph.asset_check_keys:
        if graph.get(check_key).blocking:
            blocking.setdefault(check_key.asset_key.to_user_string(), set()).add(check_key.name)
    without = sorted(name for name in EXPECTED_ASSETS if not blocking[name])
    assert not without, f"assets without a blocking check: {without}"
    no_schema_check = sorted(name for name in EXPECTED_ASSETS if f"{name}_matches_schema" not in blocking[name])
    assert not no_schema_check, (
        f"assets without a blocking <asset>_matches_schema check: {no_schema_check}; blocking checks: {blocking}"
    )


def test_jobs_sensors_and_automation(loaded_defs: dg.Definitions) -> None:
    assert {job.name for job in loaded_defs.resolve_all_job_defs()} - {"__ASSET_JOB"} == EXPECTED_JOBS
    repository = loaded_defs.get_repository_def()
    assert {sensor.name for sensor in repository.sensor_defs} == EXPECTED_SENSORS
    assert loaded_defs.resolve_sensor_def("crm_drop_sensor").job_name == "drop_ingest_job"
    assert loaded_defs.resolve_sensor_def("crm_change_feed_sensor").job_name == "crm_api_pull_job"
    # the ingest sensors run from the start; writing to the CRM on its own is an opt-in, off until someone turns it on
    statuses = {sensor.name: sensor.default_status for sensor in repository.sensor_defs}
    assert statuses.pop("crm_writeback_after_rules_activation") == dg.DefaultSensorStatus.STOPPED
    assert set(statuses.values()) == {dg.DefaultSensorStatus.RUNNING}

    # the daily pull is declarative: the roots on a cron, everything below follows what it reads, the preview on demand
    conditions = {name: spec.automation_condition for name, spec in _specs_by_name(loaded_defs).items()}
    roots = {"crm_api_clients", "crm_api_advisors", "territory_rules"}
    assert all(conditions[name].get_label() == "on_cron(0 6 * * *, UTC)" for name in roots)
    assert conditions["assignments_preview"] is None
    assert all(conditions[name].get_label() == "eager" for name in EXPECTED_ASSETS - roots - {"assignments_preview"})
    assert _specs_by_name(loaded_defs)["assignments_fact"].freshness_policy is not None


@pytest.mark.parametrize("storage", [None, "local", " LOCAL "])
def test_resource_keys_for_the_default_storage(monkeypatch: pytest.MonkeyPatch, crm_env: Path, storage: str | None) -> None:
    from crm_territory.definitions import defs

    if storage is not None:
        monkeypatch.setenv("CRM_STORAGE", storage)
    resources = defs().resources
    assert set(resources) == EXPECTED_RESOURCE_KEYS
    # The data-folder resources follow CRM_DATA_DIR.
    for key in ("io_manager", "table_store", "landing", "reference_files"):
        assert Path(resources[key].data_dir) == crm_env.resolve(), key


def test_import_does_not_read_the_environment(monkeypatch: pytest.MonkeyPatch, crm_env: Path) -> None:
    monkeypatch.setenv("CRM_STORAGE", "bogus")
    import crm_territory.definitions as module

    module = importlib.reload(module)  # re-runs the module body with the bogus value set
    with pytest.raises(ValueError, match="CRM_STORAGE"):
        module.defs()


def test_fresh_import_does_not_read_the_environment(tmp_path: Path) -> None:
    """In a new interpreter (no module cached), importing with a bogus environment succeeds; defs() fails."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(CRM_STORAGE="bogus", CRM_DATA_DIR=str(tmp_path / "does-not-exist"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    code = (
        "import crm_territory.definitions as m\n"
        "print('imported')\n"
        "try:\n"
        "    m.defs()\n"
        "except ValueError as exc:\n"
        "    print('defs() raised:', exc)\n"
        "else:\n"
        "    print('defs() did not raise')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "imported" in proc.stdout, output
    assert "defs() raised:" in proc.stdout and "CRM_STORAGE" in proc.stdout, output


def _dg_check_defs(tmp_path: Path, data_dir: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    dg_exe = Path(sys.executable).parent / "dg"
    assert dg_exe.exists(), f"the dg CLI is not installed next to {sys.executable}"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        CRM_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(dagster_home),
        # the venv running the tests is the project's: say so, or dg warns about a mismatch
        VIRTUAL_ENV=sys.prefix,
        NO_COLOR="1",
        **extra_env,
    )
    return subprocess.run(
        [str(dg_exe), "check", "defs"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dg_check_defs_passes(tmp_path: Path, data_dir: Path) -> None:
    proc = _dg_check_defs(tmp_path, data_dir)
    assert proc.returncode == 0, f"`dg check defs` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def test_dg_check_defs_fails_on_a_bad_storage_setting(tmp_path: Path, data_dir: Path) -> None:
    """The check above is meaningful: a configuration error makes ``dg check defs`` fail, naming the variable."""
    proc = _dg_check_defs(tmp_path, data_dir, CRM_STORAGE="bogus")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"`dg check defs` accepted CRM_STORAGE=bogus:\n{output}"
    assert "CRM_STORAGE" in output, output


def _dg(args: list[str], cwd: Path, tmp_path: Path, data_dir: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The dg CLI of this venv in ``cwd`` (a project folder), on a throw-away instance and data folder."""
    dg_exe = Path(sys.executable).parent / "dg"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(CRM_DATA_DIR=str(data_dir), DAGSTER_HOME=str(dagster_home), VIRTUAL_ENV=sys.prefix, NO_COLOR="1", **extra_env)
    return subprocess.run([str(dg_exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _listed(proc: subprocess.CompletedProcess[str]) -> dict:
    import json

    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_dg_list_defs_lists_every_asset_check_job_and_sensor(tmp_path: Path, data_dir: Path) -> None:
    listed = _listed(_dg(["list", "defs", "--json"], REPO_ROOT, tmp_path, data_dir))
    assert {a["asset_key"] for a in listed["assets"]} == EXPECTED_ASSETS
    assert {j["name"] for j in listed["jobs"]} - {"__ASSET_JOB"} == EXPECTED_JOBS
    assert {s["name"] for s in listed["sensors"]} == EXPECTED_SENSORS
    assert {r["name"] for r in listed["resources"]} == EXPECTED_RESOURCE_KEYS
    assert len(listed["asset_checks"]) == 34  # match_model's, crm_writeback_plan's and crm_outbound_plan's schema checks included


def test_an_asset_scaffolded_with_dg_appears_without_editing_anything_else(tmp_path: Path, data_dir: Path) -> None:
    """The defs folder is autoloaded: `dg scaffold defs dagster.asset` in a copy of the project is all it takes."""
    copy = tmp_path / "project"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in tracked:
        if name.startswith(("crm_territory/", "pyproject.toml", "workspace.yaml")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, copy / name)
    # the copy's package, not the checkout's editable install, is the one imported
    env = {"PYTHONPATH": str(copy)}
    scaffolded = _dg(["scaffold", "defs", "dagster.asset", "sources/extra_source.py"], copy, tmp_path, data_dir, **env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    assert (copy / "crm_territory" / "defs" / "sources" / "extra_source.py").is_file()
    assets = {a["asset_key"] for a in _listed(_dg(["list", "defs", "--json"], copy, tmp_path, data_dir, **env))["assets"]}
    assert assets == EXPECTED_ASSETS | {"extra_source"}
