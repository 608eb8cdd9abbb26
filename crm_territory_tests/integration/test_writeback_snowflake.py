"""The write-back with CRM_STORAGE=snowflake (issue 13, item 6): the log and its lease in CORE, no local state.

The warehouse is fakesnow's server (the real Snowflake connector over HTTP, so a second process shares it, as a
second machine would share Snowflake); the CRM is the real mock over HTTP.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import snowflake.connector

from crm_territory.logic.writeback.acts import open_journal
from crm_territory.logic.writeback.apply import apply_plan, rollback_batch
from crm_territory.logic.writeback.journal import SnowflakeWritebackJournal, WritebackBusy
from crm_territory.settings import Settings
from crm_territory.storage.warehouse_ddl import apply_ddl
from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.mock_crm_writes import (
    WRITE_TOKEN,
    assert_log_and_crm_agree,
    feed_writes,
    run_writable_mock_api,
    synthetic_plan,
    writer,
)
from crm_territory_tests.support.snowflake_fake import fake_snowflake_server

pytestmark = pytest.mark.integration


@pytest.fixture
def warehouse_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """fakesnow's server with the DDL applied in a database of the test's own (the servers of a process share one
    in-memory warehouse); the SNOWFLAKE_* variables point the engine (and a child process) at it."""
    database = f"CRM_TERRITORY_{secrets.token_hex(4).upper()}"
    with fake_snowflake_server() as kwargs:
        env = {
            "CRM_STORAGE": "snowflake",
            "SNOWFLAKE_ACCOUNT": kwargs["account"],
            "SNOWFLAKE_USER": kwargs["user"],
            "SNOWFLAKE_PASSWORD": kwargs["password"],
            "SNOWFLAKE_DATABASE": database,
            "SNOWFLAKE_WAREHOUSE": "CRM_TERRITORY_WH",
            "SNOWFLAKE_HOST": kwargs["host"],
            "SNOWFLAKE_PORT": str(kwargs["port"]),
            "SNOWFLAKE_PROTOCOL": kwargs["protocol"],
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SNOWFLAKE_ROLE", raising=False)
        connection = snowflake.connector.connect(**kwargs, database=database)
        for schema in ("RAW", "CORE"):  # what Terraform creates
            connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}")
        apply_ddl(connection)
        connection.close()
        yield env


def settings_on(data_dir: Path) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["CRM_DATA_DIR"] = str(data_dir)
    return Settings.from_env()


KILLED_APPLY = """
import sys
import pandas as pd
from crm_territory.logic.writeback.acts import open_journal
from crm_territory.logic.writeback.apply import apply_plan
from crm_territory.logic.writeback.client import CrmWriter
from crm_territory.settings import Settings

url, token, plan_path = sys.argv[1:4]
with open_journal(Settings.from_env()) as journal, CrmWriter(url, token) as crm:
    apply_plan(pd.read_pickle(plan_path), journal, crm)
"""


def test_an_apply_killed_on_one_machine_resumes_on_another_from_the_warehouse_log(
    warehouse_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A (a child process with its own empty data folder) is killed mid-apply; machine B (this process, another
    empty folder) resumes from CORE.CRM_WRITEBACK_LOG alone: the logged batches are skipped, no record is written
    twice, the log and the CRM agree record by record, and neither data folder holds any write-back state."""
    with run_writable_mock_api(clients=1000, seed=8, latency_ms=700) as url:
        plan = synthetic_plan(url, 800)  # 4 batches, each answered after 0.7 s
        plan_path = tmp_path / "plan.pkl"
        plan.to_pickle(plan_path)
        writes_before = feed_writes(url)
        machine_a, machine_b = tmp_path / "machine_a", tmp_path / "machine_b"
        machine_a.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CRM_DATA_DIR": str(machine_a)}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_APPLY, url, WRITE_TOKEN, str(plan_path)], env=env)
        with open_journal(settings_on(machine_b)) as journal:
            assert isinstance(journal, SnowflakeWritebackJournal)
            try:
                deadline = time.monotonic() + 60
                while not journal.done_batches() and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            logged = journal.read()
            assert 200 <= len(logged) < 800  # killed with batches left

            # the dead apply's lease is let go (its pid is gone), so the resume does not wait for it to lapse
            with writer(url) as crm:
                summary = apply_plan(plan, journal, crm)
            assert summary.batches_skipped == len(logged) // 200
            assert summary.batches_sent == 4 - summary.batches_skipped
            log = journal.read()
        assert log["crm_client_id"].is_unique and len(log) == 800 and set(log["status"]) == {"ok"}
        assert_log_and_crm_agree(log, url)
        written = feed_writes(url).sub(writes_before, fill_value=0)
        assert set(written[written > 0].index) == set(plan["crm_client_id"]) and (written[written > 0] == 1).all()
    assert not (machine_a / "writeback").exists() and not (machine_b / "writeback").exists()


def test_on_snowflake_a_second_apply_sends_nothing_and_a_rollback_is_its_own_logged_batch(
    warehouse_env: dict[str, str], tmp_path: Path
) -> None:
    with run_writable_mock_api(clients=400, seed=4) as url:
        plan = synthetic_plan(url, 300)
        with open_journal(settings_on(tmp_path / "data")) as journal, writer(url) as crm:
            first = apply_plan(plan, journal, crm)
            again = apply_plan(plan, journal, crm)
            undo = rollback_batch(f"{plan['plan_id'].iloc[0]}-00001", journal, crm)
            log = journal.read()
    assert first.batches_sent == 2 and first.records["ok"] == 300
    assert again.batches_sent == 0 and again.batches_skipped == 2
    assert undo.records["ok"] == 200
    applied, rolled_back = log[log["action"] == "apply"], log[log["action"] == "rollback"]
    assert len(applied) == 300 and len(rolled_back) == 200
    assert set(rolled_back["batch_id"]) == {f"rollback-{plan['plan_id'].iloc[0]}-00001"}
    # the log's timestamps and empty values survive the warehouse round trip
    assert str(log["logged_at"].dt.tz) == "UTC" and log["crm_owner"].isna().all()


def test_two_applies_at_once_on_snowflake_the_second_waits_then_names_the_holder(
    warehouse_env: dict[str, str], tmp_path: Path
) -> None:
    with open_journal(settings_on(tmp_path / "a")) as first, open_journal(settings_on(tmp_path / "b")) as second:
        assert isinstance(first, SnowflakeWritebackJournal) and isinstance(second, SnowflakeWritebackJournal)
        with first.lock():
            with pytest.raises(WritebackBusy, match=rf"another write-back holds the lease .*{first.holder}"), second.lock(1.0):
                pass
        with second.lock(1.0):  # released at the end of the first: taken at once
            pass


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_stops_before_its_next_batch(
    warehouse_env: dict[str, str], tmp_path: Path
) -> None:
    with open_journal(settings_on(tmp_path / "a")) as stalled, open_journal(settings_on(tmp_path / "b")) as fresh:
        assert isinstance(stalled, SnowflakeWritebackJournal) and isinstance(fresh, SnowflakeWritebackJournal)
        stalled.holder = "another-host:1:stalled"  # a holder this host cannot see: only its lease's expiry frees it
        stalled.lease_seconds = 1
        with stalled.lock():
            time.sleep(1.5)
            with fresh.lock(5.0):
                with pytest.raises(WritebackBusy, match="taken over"):
                    stalled.renew()


def test_without_the_ddl_the_log_names_the_command_to_run(warehouse_env: dict[str, str], tmp_path: Path) -> None:
    connection = snowflake.connector.connect(
        user="fake", password="snow", account="fakesnow", host=warehouse_env["SNOWFLAKE_HOST"],
        port=int(warehouse_env["SNOWFLAKE_PORT"]), protocol="http", database=warehouse_env["SNOWFLAKE_DATABASE"],
    )  # fmt: skip
    connection.cursor().execute(f"DROP TABLE {warehouse_env['SNOWFLAKE_DATABASE']}.CORE.CRM_WRITEBACK_LOG")
    connection.close()
    with open_journal(settings_on(tmp_path / "data")) as journal:
        with pytest.raises(dg.Failure, match=r"CRM_WRITEBACK_LOG does not exist: run `python -m crm_territory.cli apply-ddl`"):
            journal.read()
        with pytest.raises(dg.Failure, match=r"CRM_WRITEBACK_LOG does not exist"), journal.lock(1.0):
            pass


def test_the_published_plan_is_applied_from_core_a_chunk_at_a_time_in_plan_order(
    warehouse_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan as the pipeline publishes it to CORE.CRM_WRITEBACK_PLAN, read back in chunks of PLAN_CHUNK_ROWS
    (shrunk to 70 here) ordered by crm_client_id: the batches are the plan's, whatever order the warehouse keeps."""
    from crm_territory.defs.resources import table_store_outside_a_run
    from crm_territory.logic.writeback import acts
    from crm_territory.schemas import CrmWritebackPlan, columns_of

    monkeypatch.setattr(acts, "PLAN_CHUNK_ROWS", 70)
    with run_writable_mock_api(clients=400, seed=21) as url:
        plan = synthetic_plan(url, 350)
        plan.loc[plan.index[[3, 120]], "status"] = "refused"
        plan.loc[plan.index[[3, 120]], "refusal_reason"] = "advisor x is not active"
        shuffled = plan.sample(frac=1.0, random_state=7)[columns_of(CrmWritebackPlan)]
        rows = shuffled.astype(object).where(shuffled.notna(), None)
        rows["planned_at"] = shuffled["planned_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        database = warehouse_env["SNOWFLAKE_DATABASE"]
        connection = snowflake.connector.connect(
            user="fake", password="snow", account="fakesnow", host=warehouse_env["SNOWFLAKE_HOST"],
            port=int(warehouse_env["SNOWFLAKE_PORT"]), protocol="http", database=database,
        )  # fmt: skip
        columns = ", ".join(c.upper() for c in rows.columns)
        connection.cursor().executemany(
            f"INSERT INTO {database}.CORE.CRM_WRITEBACK_PLAN ({columns}) VALUES ({', '.join(['%s'] * len(rows.columns))})",
            list(rows.itertuples(index=False, name=None)),
        )
        connection.close()
        monkeypatch.setenv("CRM_WRITE_TOKEN", WRITE_TOKEN)
        settings = settings_on(tmp_path / "data")
        with table_store_outside_a_run(settings) as store, open_journal(settings) as journal:
            summary = acts.apply_published_plan(store, journal, url, lambda _: None)
            log = journal.read()
        assert summary.batches_sent == 2 and summary.records["ok"] == 348 and summary.records["refused"] == 2
        plan_id = plan["plan_id"].iloc[0]
        sent = log[log["status"] == "ok"]
        # batch 1 holds the first 200 sendable records in crm_client_id order, as batching the whole plan would
        first = plan[plan["status"] == "send"].sort_values("crm_client_id")["crm_client_id"].iloc[:200]
        assert sorted(sent.loc[sent["batch_id"] == f"{plan_id}-00001", "crm_client_id"]) == sorted(first)
        assert set(log.loc[log["status"] == "refused", "batch_id"]) == {f"{plan_id}-refused-00001"}
        assert_log_and_crm_agree(log, url)
