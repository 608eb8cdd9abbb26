"""client_placement_in_warehouse: the rules run inside Snowflake over the run's own client_dim, on fakesnow.

Whole runs of ``materialize_all_job`` with CRM_STORAGE=snowflake (the real connector and dagster-snowflake's
resource over fakesnow's DuckDB), as test_snowflake_storage.py runs them; the warehouse table is compared row by
row with the pandas engine's placement of the same client_dim and with the run's assignments_fact.
"""

import os
import time

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.logic.rules.engine import evaluate
from crm_territory.logic.rules.loader import load_rules
from crm_territory.schemas import WAREHOUSE_TABLES, conform
from crm_territory.settings import Settings
from crm_territory_tests.integration.test_snowflake_storage import read_table, run_all, staging_tables
from crm_territory_tests.support import REPO_ROOT, materialized
from crm_territory_tests.support.snowflake_fake import FAKE_ENV, deployed_warehouse

pytestmark = pytest.mark.integration

MOCK_API_BOOK = {"clients": 400, "seed": 5}
TABLE = "client_placement_in_warehouse"
CHECK = "placements_match_pandas_engine"
WORKED_EXAMPLE = REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml"
KEY = ["client_key", "assignment_type", "territory_id"]


@pytest.fixture
def env(monkeypatch, pipeline_env):
    """The Snowflake settings of fakesnow's account, over the run environment (as test_snowflake_storage's)."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def warehouse(env):
    """fakesnow with the deployment's set-up: the schemas Terraform creates, then the DDL."""
    with deployed_warehouse() as connection:
        yield connection


def read_placement(connection) -> pd.DataFrame:
    spec = WAREHOUSE_TABLES[TABLE]
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM CRM_TERRITORY.{spec.warehouse_name}")
    return conform(pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description]), spec.model)


def sorted_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].sort_values(columns[:3], kind="stable").reset_index(drop=True).astype(object)


def make_active(data_dir, text: str) -> None:
    (data_dir / "rules" / "territory_rules.yaml").write_text(text, encoding="utf-8")


# The worked example's own clients (docs/rules.md; ids 1-3 are the seed drop's): its override, exclusion, Atlas
# group, parent rows, a trust without a region and a client with neither region nor segment fire in the run's book.
WORKED_DROP = """client_id,client_name,region,segment,parent_org,advisor_email,aum_usd,business_type
4,Atlas Holdings,Southeast,Retail,,,300000000,Corporation
5,Teachers Pension Fund,Southwest,Institutional,,,10000000,
6,Dune Trust,,,,,10000000,Trust
7,Eagle Retail,Northeast,Retail,atlas  HOLDINGS,,500000,Foundation
8,Fjord,Southwest,Retail,,,,
9,Gale,Northwest,Retail,Fjord,,3000000,
10,Atlas Energy,West,Retail,Atlas Holdings,,7000000,Individual
11,Hollow Pine Partners,,,,,,
"""


def land_worked_clients(data_dir) -> None:
    drop = data_dir / "landing" / "2026-12-06_worked_example.csv"
    drop.write_text(WORKED_DROP)
    os.utime(drop, (time.time() - 3600, time.time() - 3600))  # settled: the run takes it without waiting


def worked_example_ascii() -> str:
    """The worked example with its regular expression made ASCII ((?ai)): every construct, and it compiles."""
    return WORKED_EXAMPLE.read_text(encoding="utf-8").replace("(?i)", "(?ai)")


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    return next(
        e.materialization for e in result.get_asset_materialization_events() if e.materialization.asset_key.path[-1] == asset
    )


def test_defined_only_on_snowflake_storage(env):
    env.setenv("CRM_STORAGE", "local")
    local = build_definitions(Settings.from_env()).resolve_asset_graph()
    assert dg.AssetKey(TABLE) not in local.get_all_asset_keys()
    assert CHECK not in {k.name for k in local.asset_check_keys}

    env.setenv("CRM_STORAGE", "snowflake")
    graph = build_definitions(Settings.from_env()).resolve_asset_graph()
    node = graph.get(dg.AssetKey(TABLE))
    assert {k.to_user_string() for k in node.parent_keys} == {"client_dim", "territory_dim", "territory_rules"}
    assert node.group_name == "rules" and "Grain: one row per (client_key, territory_id, assignment_type)" in (
        node.description or ""
    )
    check = graph.get(dg.AssetCheckKey(dg.AssetKey(TABLE), CHECK))
    assert not check.blocking  # a disagreement must not keep the run's tables unpublished


def test_a_snowflake_run_places_its_own_client_dim_in_the_warehouse_as_the_pandas_engine_does(warehouse, env, data_dir):
    make_active(data_dir, worked_example_ascii())
    land_worked_clients(data_dir)
    instance = dg.DagsterInstance.ephemeral()
    result = run_all("snowflake", env, instance)
    assert result.success
    assert TABLE in materialized(result)

    # it read this run's staged client_dim: on a first run the published CORE.CLIENT_DIM held no rows at all
    metadata = materialization(result, TABLE).metadata
    assert metadata["client_dim_read"].value == f"CRM_TERRITORY.CORE.CLIENT_DIM__RUN_{result.run_id[:8].upper()}"
    assert staging_tables(warehouse) == []  # published with the run's set, staging dropped

    client_dim = read_table(warehouse, "client_dim")
    fact = read_table(warehouse, "assignments_fact")
    placement = read_placement(warehouse)
    rules = load_rules(data_dir / "rules" / "territory_rules.yaml")
    assert set(placement["rules_version"]) == {rules.version}
    assert metadata["rules_version"].value == rules.version
    assert metadata["dagster/row_count"].value == len(placement) and metadata["primary_rows"].value == len(client_dim)

    # row by row against the pandas engine on the same client_dim: every column of the PRIMARY placement ...
    expected = evaluate(client_dim.sort_values("client_key").reset_index(drop=True), rules)
    primary = placement[placement["assignment_type"] == "PRIMARY"]
    columns = ["client_key", "segment", "segment_rule", "target_region", "target_segment", "assigned_by", "pinned_advisor"]
    pd.testing.assert_frame_equal(sorted_rows(primary, columns), sorted_rows(expected.clients, columns))
    # ... and of the SECONDARY rows
    secondary = placement[placement["assignment_type"] == "SECONDARY"]
    columns = ["client_key", "target_region", "target_segment", "overlay", "assigned_by"]
    pd.testing.assert_frame_equal(
        sorted_rows(secondary, columns).sort_values(columns).reset_index(drop=True),
        sorted_rows(expected.secondary, columns).sort_values(columns).reset_index(drop=True),
    )
    # the example's constructs fired in this book: a test of more than the fallback
    rules_ids = {r.id for r in rules.territories.rules} | {o.id for o in rules.secondary.overlays}
    fired = set(placement["assigned_by"])
    assert rules_ids | {"parent_org", "fallback", "override:csv_drop:1"} <= fired
    assert placement["segment_rule"].notna().any() and primary["pinned_advisor"].notna().sum() == 2

    # and against the run's assignments_fact, on its grain, with its territory ids
    columns = [*KEY, "assigned_by", "segment_rule", "rules_version"]
    pd.testing.assert_frame_equal(sorted_rows(placement, columns), sorted_rows(fact, columns))

    # the check compared the same inside the warehouse, and passed
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK]
    assert evaluation.passed and evaluation.metadata["differing_rows"].value == 0
    assert evaluation.metadata["warehouse_rows"].value == len(fact)
    assert evaluation.metadata["compared_with"].value == "this run's assignments_fact"


def test_the_check_finds_a_placement_that_differs_and_shows_it(warehouse, env, data_dir):
    """The check itself, outside a run: the published placement and fact of a run, one row changed in each way."""
    make_active(data_dir, worked_example_ascii())
    assert run_all("snowflake", env).success
    cursor = warehouse.cursor()
    cursor.execute(
        "SELECT CLIENT_KEY FROM CRM_TERRITORY.CORE.CLIENT_PLACEMENT_IN_WAREHOUSE WHERE ASSIGNMENT_TYPE = 'PRIMARY' "
        "ORDER BY CLIENT_KEY LIMIT 2"
    )
    first, second = (row[0] for row in cursor.fetchall())
    cursor.execute(
        f"UPDATE CRM_TERRITORY.CORE.CLIENT_PLACEMENT_IN_WAREHOUSE SET ASSIGNED_BY = 'not-a-rule' WHERE CLIENT_KEY = '{first}' "
        "AND ASSIGNMENT_TYPE = 'PRIMARY'"
    )
    cursor.execute(f"SELECT COUNT(*) FROM CRM_TERRITORY.CORE.CLIENT_PLACEMENT_IN_WAREHOUSE WHERE CLIENT_KEY = '{second}'")
    [(rows_of_second,)] = cursor.fetchall()
    cursor.execute(f"DELETE FROM CRM_TERRITORY.CORE.ASSIGNMENTS_FACT WHERE CLIENT_KEY = '{second}'")

    defs = build_definitions(Settings.from_env())
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={dg.AssetCheckKey(dg.AssetKey(TABLE), CHECK)}, asset_selection=set()
    )
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    said = {key: str(value.value) for key, value in evaluation.metadata.items()}
    assert said["differing_rows"] == str(1 + rows_of_second)  # one assigned_by, and every row of the deleted client
    assert "published assignments_fact" in said["compared_with"]
    assert "assigned_by" in said["differences"] and "only in the warehouse placement" in said["differences"]
    assert first in said["sample"] and second in said["sample"] and "not-a-rule" in said["sample"]
    assert "test_rules_sql.py" in said["next_step"]


def test_rules_the_compiler_refuses_skip_the_warehouse_placement_and_the_run_still_publishes(warehouse, env, data_dir):
    # a first run with rules that compile publishes a warehouse placement ...
    make_active(data_dir, worked_example_ascii())
    assert run_all("snowflake", env).success
    before = read_placement(warehouse)
    compiled_version = load_rules(data_dir / "rules" / "territory_rules.yaml").version

    # ... then the worked example as committed: its pension-plans rule matches a Unicode \b, refused by the compiler
    make_active(data_dir, WORKED_EXAMPLE.read_text(encoding="utf-8"))
    refused_version = load_rules(data_dir / "rules" / "territory_rules.yaml").version
    instance = dg.DagsterInstance.ephemeral()
    result = run_all("snowflake", env, instance)

    assert result.success  # the pandas pipeline is not broken ...
    assert "assignments_fact" in materialized(result) and TABLE not in materialized(result)
    assert set(read_table(warehouse, "assignments_fact")["rules_version"]) == {refused_version}  # ... and published
    assert CHECK not in {e.check_name for e in result.get_asset_check_evaluations()}  # skipped with its asset
    skipped = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SKIPPED]
    assert any(CHECK in (key or "") for key in skipped)
    # the warehouse table keeps the last placement that compiled, its rows saying which rules
    after = read_placement(warehouse)
    assert set(after["rules_version"]) == {compiled_version} != {refused_version}
    pd.testing.assert_frame_equal(sorted_rows(after, list(after.columns)), sorted_rows(before, list(before.columns)))
    assert staging_tables(warehouse) == []

    # said where people look: the run's log and an observation on the asset, naming the rule and what to do
    said = [e.user_message for e in instance.all_logs(result.run_id) if "was not computed in this run" in e.user_message]
    assert len(said) == 1
    assert "rule 'pension-plans'" in said[0] and "territories.rules[1].when.client_name.regex" in said[0]
    assert "\\b" in said[0] and "(?a)" in said[0] and "assignments_fact" in said[0]
    [observation] = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        and e.asset_observation_data.asset_observation.asset_key == dg.AssetKey(TABLE)
    ]
    assert observation.metadata["rule"].value == "pension-plans"
    assert "activate" in str(observation.metadata["what_to_do"].value)
