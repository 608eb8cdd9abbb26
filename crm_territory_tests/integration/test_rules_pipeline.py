"""Rules, advisors, history and the preview through Dagster, on a temporary data folder and the real mock API."""

import logging
import shutil

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.logic.history.point_in_time import owner_on
from crm_territory.logic.rules.loader import load_rules
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, REPO_ROOT, error_text, materialized

pytestmark = pytest.mark.integration

WORKED_EXAMPLE = REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml"


MOCK_API_BOOK = {"clients": 600, "seed": 11}


@pytest.fixture
def env(pipeline_env):
    return pipeline_env


def run(settings: Settings, job: str = "materialize_all_job", run_config=QUIET, instance=None) -> dg.ExecuteInProcessResult:
    return (
        build_definitions(settings)
        .resolve_job_def(job)
        .execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=run_config)
    )


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_assignment_says_which_rule_and_version_placed_it(env):
    assert run(env).success
    store = CsvTables(env.data_dir)
    fact = store.read("assignments_fact")
    version = load_rules(env.data_dir / "rules" / "territory_rules.yaml").version
    assert set(fact["rules_version"]) == {version}
    assert set(fact["assigned_by"]) <= {"by-region-and-segment", "fallback"}
    unassigned = fact[fact["territory_id"] == "UNASSIGNED"]
    assert len(unassigned) and set(unassigned["assigned_by"]) == {"fallback"}
    assert fact["advisor_reason"].notna().all()  # every PRIMARY row says why it has its advisor
    rules = store.read("territory_rules")
    assert rules["rule_id"].tolist() == ["by-region-and-segment"] and set(rules["rules_version"]) == {version}


def test_advisors_are_balanced_within_capacity_and_the_warn_check_gives_the_numbers(env):
    result = run(env)
    assert result.success
    store = CsvTables(env.data_dir)
    fact, advisors = store.read("assignments_fact"), store.read("advisor_dim")
    primary = fact[fact["is_current"] & (fact["assignment_type"] == "PRIMARY")]
    # with a roster, a client in UNASSIGNED has no advisor until it is placed (it must not load anyone)
    assert primary.loc[primary["territory_id"] == "UNASSIGNED", "primary_advisor_email"].isna().all()
    current = primary[primary["primary_advisor_email"].notna()]
    assert len(advisors) == 60 and (~advisors["active"]).sum() == 3
    inactive = set(advisors.loc[~advisors["active"], "advisor_email"])
    assert not set(current["primary_advisor_email"]) & inactive  # nobody stays with an inactive advisor
    served = advisors.assign(territories=advisors["territories"].str.split(";")).explode("territories")
    allowed = set(zip(served["advisor_email"], served["territories"]))
    assert all(pair in allowed for pair in zip(current["primary_advisor_email"], current["territory_id"]))
    loads = current["primary_advisor_email"].value_counts()
    capacity = advisors.set_index("advisor_email")["capacity"]
    over = loads[loads > capacity.reindex(loads.index)]
    check = checks(result)["assignments_fact_advisor_capacity"]
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == over.empty
    assert check.metadata["advisors_over_capacity"].value == len(over)  # every over-capacity advisor is reported
    if len(over):  # each one serves a territory the check lists as over capacity
        listed = check.metadata["territories"].value
        for email in over.index:
            assert any(t in listed for t in served.loc[served["advisor_email"] == email, "territories"]), email
        # and which clients: those the over-capacity advisors hold, counted and sampled
        held = current.loc[current["primary_advisor_email"].isin(over.index), "client_key"]
        assert check.metadata["clients_of_over_capacity_advisors"].value == len(held) == over.sum()
        sample = check.metadata["affected_clients"].value
        listed_keys = {line.split("|")[1].strip() for line in sample.splitlines()[2:] if line.startswith("|")}
        assert listed_keys and listed_keys <= set(held), listed_keys - set(held)
    assert set(fact.loc[fact["assignment_type"] == "PRIMARY", "advisor_reason"]) >= {"kept", "reassigned_inactive"}


def test_a_malformed_rules_file_fails_naming_key_and_reason_and_nothing_moves(env):
    assert run(env).success
    store = CsvTables(env.data_dir)
    before = {t: store.read(t) for t in ("territory_dim", "assignments_fact")}
    rules_path = env.data_dir / "rules" / "territory_rules.yaml"
    rules_path.write_text(rules_path.read_text().replace("priority: 1000", "priority: high"))
    result = run(env)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "territory_rules")
    text = error_text(failure)
    assert "territories.rules[0].priority" in text and "territory_rules.yaml" in text
    assert not {"territory_dim", "assignments_fact"} & materialized(result)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(store.read(table), frame, obj=table)


def test_a_rules_file_naming_an_unknown_region_fails_static_analysis(env):
    rules_path = env.data_dir / "rules" / "territory_rules.yaml"
    rules_path.write_text(
        rules_path.read_text().replace(
            "  rules:\n",
            "  rules:\n    - id: to-atlantis\n      priority: 5\n      when: {region: {eq: Northeast}}\n      assign: {region: Atlantis, segment: Retail}\n",
            1,
        )
    )
    result = run(env, job="drop_ingest_job")
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "territory_rules")
    assert "territories.rules[0].assign.region: unknown region 'Atlantis'" in error_text(failure)


def test_preview_then_explicit_activation_moves_exactly_what_was_previewed(env):
    instance = dg.DagsterInstance.ephemeral()  # one instance: activation looks up what was previewed in it
    assert run(env, instance=instance).success
    store = CsvTables(env.data_dir)
    assert store.read("assignments_preview").empty  # no candidate yet: nothing to preview

    candidate = env.data_dir / "rules" / "candidate" / "territory_rules.yaml"
    candidate.parent.mkdir(parents=True)
    shutil.copy(WORKED_EXAMPLE, candidate)
    version = load_rules(candidate).version

    def activate(v: str) -> dg.ExecuteInProcessResult:
        return run(
            env,
            job="activate_rules_job",
            run_config={"ops": {"activate_candidate_rules": {"config": {"version": v}}}},
            instance=instance,
        )

    unseen = activate(version)  # not previewed yet: refused
    assert not unseen.success
    assert "have not been previewed" in error_text(next(e for e in unseen.all_events if e.is_step_failure))

    before = store.read("assignments_fact")
    result = run(env, job="preview_rules_job", instance=instance)
    assert result.success
    preview = store.read("assignments_preview")
    assert len(preview) > 0 and set(preview["candidate_version"]) == {version}
    pd.testing.assert_frame_equal(store.read("assignments_fact"), before)  # nothing moved
    mat = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "assignments_preview"
    )
    assert mat.metadata["candidate_version"].value == version
    assert "max advisor utilisation" in mat.metadata["load_balance"].value
    assert mat.metadata["secondary_rows_after"].value > mat.metadata["secondary_rows_before"].value == 0

    wrong = activate("0" * 12)
    assert not wrong.success
    assert "have not been previewed" in error_text(next(e for e in wrong.all_events if e.is_step_failure))

    assert activate(version).success
    assert load_rules(env.data_dir / "rules" / "territory_rules.yaml").version == version
    assert not candidate.exists() and len(list((env.data_dir / "rules" / "archive").iterdir())) == 1

    assert run(env, instance=instance).success
    after = store.read("assignments_fact")
    primary = after[after["assignment_type"] == "PRIMARY"].set_index("client_key")
    current_after = primary[primary["is_current"]]
    previewed = preview.set_index("client_key")
    # exactly the previewed clients changed territory or advisor, each as the preview said
    old = before[(before["assignment_type"] == "PRIMARY") & before["is_current"]].set_index("client_key")
    moved = current_after.index[
        (current_after["territory_id"] != old.loc[current_after.index, "territory_id"])
        | (current_after["primary_advisor_email"].fillna("") != old.loc[current_after.index, "primary_advisor_email"].fillna(""))
    ]
    assert sorted(moved) == sorted(previewed.index)
    assert (current_after.loc[previewed.index, "territory_id"] == previewed["territory_after"]).all()
    assert (current_after.loc[previewed.index, "primary_advisor_email"].fillna("") == previewed["advisor_after"].fillna("")).all()
    assert set(after["rules_version"]) == {version}
    assert "SECONDARY" in set(after["assignment_type"])  # parent_org and overlay rows
    assert "FOUNDATIONS" in set(store.read("territory_dim")["territory_id"])


def test_a_candidate_over_the_preview_time_limit_is_stopped_and_reported_and_the_run_succeeds(env):
    from crm_territory_tests.unit.test_preview import SLOW_CANDIDATE, SLOW_NAME

    # a client whose name makes each of the candidate's 500 rules take ~0.1 s: about a minute in all
    (env.data_dir / "landing" / "slow_name.csv").write_text(
        f"client_id,client_name,region,segment,parent_org,advisor_email\nS1,{SLOW_NAME},Midwest,Retail,,advisor1@example.com\n"
    )
    candidate = env.data_dir / "rules" / "candidate" / "territory_rules.yaml"
    candidate.parent.mkdir(parents=True)
    candidate.write_text(SLOW_CANDIDATE)
    config = {**QUIET, "ops": {"assignments_preview": {"config": {"time_limit_seconds": 1}}}}
    instance = dg.DagsterInstance.ephemeral()
    result = run(env, run_config=config, instance=instance)

    assert result.success  # a broken candidate never fails a production run
    assert {"client_dim", "territory_dim", "assignments_fact", "assignments_preview"} <= materialized(result)
    store = CsvTables(env.data_dir)
    assert SLOW_NAME in set(store.read("client_dim")["client_name"])
    assert store.read("assignments_preview").empty
    mat = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "assignments_preview"
    )
    assert mat.metadata["candidate"].value == "timed out after 1 s"
    assert "cannot be activated" in mat.metadata["meaning"].value
    assert "time_limit_seconds" in mat.metadata["what_to_do"].value
    logged = [e for e in instance.all_logs(result.run_id) if e.level == logging.ERROR and e.step_key == "assignments_preview"]
    assert any("took more than 1 s and was stopped" in e.user_message for e in logged)


def test_a_range_on_a_text_column_is_refused_before_anything_runs(env):
    rules_path = env.data_dir / "rules" / "territory_rules.yaml"
    rules_path.write_text(
        rules_path.read_text().replace("segment: {not_null: true}", "segment: {not_null: true}\n        business_type: {gte: 5}")
    )
    result = run(env, job="drop_ingest_job")
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "territory_rules")
    assert "territories.rules[0].when.business_type.gte" in error_text(failure) and "'business_type' is text" in error_text(
        failure
    )


def test_history_records_changes_across_runs_and_answers_who_owned_a_client_when(env):
    instance = dg.DagsterInstance.ephemeral()
    assert run(env, job="drop_ingest_job", instance=instance).success
    store = CsvTables(env.data_dir)
    first = store.read("assignments_fact_history")
    assert len(first) == len(store.read("assignments_fact")) and first["is_current"].all()
    t1 = first["valid_from"].max()

    assert run(env, job="drop_ingest_job", instance=instance).success  # unchanged input: no new versions
    pd.testing.assert_frame_equal(store.read("assignments_fact_history"), first)

    # client 2 moves from Northeast Retail to Midwest Retail in a later drop
    drop = env.data_dir / "landing" / "2026-12-01_moves.csv"
    drop.write_text(
        "client_id,client_name,region,segment,parent_org,advisor_email\n2,Beacon Wealth Management,Midwest,Retail,Beacon Group,advisor2@example.com\n"
    )
    assert run(env, job="drop_ingest_job", instance=instance).success
    history = store.read("assignments_fact_history")
    beacon = history[history["client_key"] == "csv_drop:2"].sort_values("valid_from")
    assert beacon["territory_id"].tolist() == ["NOR_RET", "MID_RET"]
    assert beacon["is_current"].tolist() == [False, True]
    t2 = beacon["valid_from"].iloc[1]
    assert beacon["valid_to"].iloc[0] == t2
    assert owner_on(history, "csv_drop:2", t1)["territory_id"].iloc[0] == "NOR_RET"
    assert owner_on(history, "csv_drop:2", t2)["territory_id"].iloc[0] == "MID_RET"
    clients = store.read("client_dim_history")
    assert clients[clients["client_key"] == "csv_drop:2"]["region"].tolist() == ["Northeast", "Midwest"]
    assert checks(run(env, job="drop_ingest_job", instance=instance))["assignments_fact_history_intervals_valid"].passed
