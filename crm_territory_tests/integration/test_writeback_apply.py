"""The write-back against the real mock CRM over HTTP (issue 13): plan, apply, re-apply, rollback, conflicts, faults.

Every check reads the CRM back over HTTP (``GET /clients``, ``/changes``) and compares it with the plan and the
append-only log record by record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_territory import cli
from crm_territory.definitions import build_definitions
from crm_territory.logic.rules.loader import load_rules
from crm_territory.logic.writeback.apply import apply_plan, rollback_batch
from crm_territory.logic.writeback.client import CrmWriter, WritebackError
from crm_territory.logic.writeback.journal import WritebackJournal
from crm_territory.settings import Settings
from crm_territory.storage.local import LocalCsvTableStore
from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.mock_api_server import TEST_TOKEN
from crm_territory_tests.support.mock_crm_writes import (
    WRITE_TOKEN,
    assert_log_and_crm_agree,
    crm_book,
    feed_writes,
    run_writable_mock_api,
    set_fields,
    synthetic_plan,
    writer,
)

pytestmark = pytest.mark.integration

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CRM_USER_OWNER = "crm.user@northwind-advisors.com"


# --- end to end: the pipeline's plan, the job, the CLI ---------------------------------------------------------------


@pytest.fixture
def live(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with run_writable_mock_api(clients=300, seed=11) as url:
        monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)
        monkeypatch.setenv("CRM_WRITE_TOKEN", WRITE_TOKEN)
        monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
        monkeypatch.setenv("CRM_API_URL", url)
        yield Settings.from_env(), url


def run_job(settings: Settings, job: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return (
        build_definitions(settings)
        .resolve_job_def(job)
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config={**QUIET, **(run_config or {})}
        )
    )


def test_apply_changes_exactly_the_planned_clients_reapply_sends_nothing_rollback_restores(live, capsys) -> None:
    settings, url = live
    assert run_job(settings, "materialize_all_job").success
    plan = LocalCsvTableStore(data_dir=str(settings.data_dir)).read_previous("crm_writeback_plan")
    assert plan is not None
    to_send = plan[plan["status"] == "send"].set_index("crm_client_id")
    assert len(to_send) > 200  # at least two batches: the CRM starts with no territories
    before = crm_book(url)
    # the plan read what the CRM holds
    assert (before.loc[to_send.index, "etag"] == to_send["etag"]).all()
    assert (before.loc[to_send.index, "owner_email"].fillna("") == to_send["owner_before"].fillna("")).all()

    # a CRM user edits a planned client between plan and apply
    edited = to_send.index[5]
    assert set_fields(url, edited, owner_email=CRM_USER_OWNER).status_code == 200

    assert run_job(settings, "crm_writeback_job").success
    after = crm_book(url)
    applied = to_send.index.drop(edited)
    assert (after.loc[applied, "owner_email"] == to_send.loc[applied, "owner_after"]).all()
    assert (after.loc[applied, "territory_id"] == to_send.loc[applied, "territory_after"]).all()
    assert after.loc[edited, "owner_email"] == CRM_USER_OWNER  # left as the CRM user set it
    assert after.loc[edited, "territory_id"] == before.loc[edited, "territory_id"]
    untouched = before.index.difference(to_send.index)  # the refused rows among them
    pd.testing.assert_frame_equal(after.loc[untouched], before.loc[untouched])

    log = WritebackJournal(settings.data_dir).read()
    sent = log[log["status"] != "refused"]
    assert sorted(sent["crm_client_id"]) == sorted(to_send.index)  # every planned record once, nothing else
    refused = plan.loc[plan["status"] == "refused", "crm_client_id"]
    assert sorted(log.loc[log["status"] == "refused", "crm_client_id"]) == sorted(refused)
    assert (after.loc[refused, "etag"] == before.loc[refused, "etag"]).all()  # listed, never sent
    conflict = log.set_index("crm_client_id").loc[edited]
    assert conflict["status"] == "conflict"
    assert conflict["crm_owner"] == CRM_USER_OWNER and conflict["owner_after"] == to_send.loc[edited, "owner_after"]
    assert set(sent.loc[sent["crm_client_id"] != edited, "status"]) == {"ok"}
    assert_log_and_crm_agree(sent, url)

    # a second apply of the same plan sends nothing
    writes = feed_writes(url).sum()
    assert run_job(settings, "crm_writeback_job").success
    assert feed_writes(url).sum() == writes
    assert len(WritebackJournal(settings.data_dir).read()) == len(log)

    # rollback of the first batch, from the CLI: restores its records, not the edited one
    first_batch = sent["batch_id"].iloc[0]
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "crm_territory.cli", "writeback", "rollback", "--batch", first_batch],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 already done" in done.stdout or "1 batch(es) sent" in done.stdout
    rolled = log.loc[(log["batch_id"] == first_batch) & (log["status"] == "ok"), "crm_client_id"]
    restored = crm_book(url)
    assert (restored.loc[rolled, "owner_email"].fillna("") == before.loc[rolled, "owner_email"].fillna("")).all()
    assert restored.loc[rolled, "territory_id"].isna().all() and before.loc[rolled, "territory_id"].isna().all()
    assert restored.loc[edited, "owner_email"] == CRM_USER_OWNER
    rollback_rows = WritebackJournal(settings.data_dir).read().query("action == 'rollback'")
    assert set(rollback_rows["batch_id"]) == {f"rollback-{first_batch}"} and set(rollback_rows["status"]) == {"ok"}

    # the CLI shows the plan and the log's per-batch totals
    capsys.readouterr()
    assert cli.main(["writeback", "plan"]) == 0
    shown = capsys.readouterr().out
    plan_id = plan["plan_id"].iloc[0]
    assert f"plan {plan_id}: {len(to_send):,} record(s) to change, {len(refused):,} refused" in shown
    assert cli.main(["writeback", "log"]) == 0
    totals = capsys.readouterr().out
    assert f"rollback-{first_batch}" in totals and f"{plan_id}-00002" in totals

    # the next pull (incremental, as the change feed asks for one) brings the etags the writes left, and the plan
    # computed from it holds only what the CRM no longer agrees with: the rolled-back batch and the CRM user's edit
    assert run_job(settings, "crm_api_pull_job").success
    store = LocalCsvTableStore(data_dir=str(settings.data_dir))
    snapshot = store.read_previous("crm_api_clients")
    assert snapshot is not None
    now = crm_book(url)
    held = snapshot.set_index("client_id").loc[now.index]
    assert (held["crm_etag"] == now["etag"]).all() and (held["crm_owner_email"].fillna("") == now["owner_email"].fillna("")).all()
    replan = store.read_previous("crm_writeback_plan")
    assert replan is not None
    resend = replan[replan["status"] == "send"].set_index("crm_client_id")
    assert sorted(resend.index) == sorted([*rolled, edited])
    assert (resend["etag"] == now.loc[resend.index, "etag"]).all()
    assert resend.loc[edited, "owner_before"] == CRM_USER_OWNER


def test_a_drop_run_plans_from_the_stored_snapshot_without_the_token_or_the_crm(live, monkeypatch) -> None:
    """The plan is computed from the last pull (crm_api_clients): a drop run needs neither the token nor the CRM."""
    settings, url = live
    assert run_job(settings, "materialize_all_job").success
    store = LocalCsvTableStore(data_dir=str(settings.data_dir))
    pulled_plan = store.read_previous("crm_writeback_plan")
    assert pulled_plan is not None and (pulled_plan["status"] == "send").sum() > 0
    snapshot = store.read_previous("crm_api_clients")
    assert snapshot is not None and snapshot["crm_etag"].notna().all()

    monkeypatch.delenv("CRM_API_TOKEN")
    monkeypatch.setenv("CRM_API_URL", "http://127.0.0.1:9")  # nothing listens: any request would fail the run
    result = run_job(Settings.from_env(), "drop_ingest_job")
    assert result.success
    plan_event = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "crm_writeback_plan"
    )
    # the rules its placements came from (what the optional after-activation sensor compares), as the fact records it
    fact_rules = store.read_previous("assignments_fact")
    assert fact_rules is not None
    assert plan_event.metadata["rules_version"].value == fact_rules.loc[fact_rules["is_current"], "rules_version"].iloc[0]
    replanned = store.read_previous("crm_writeback_plan")
    assert replanned is not None
    # same snapshot, same placements: the same plan (same id, so an apply of either sends the same batches once)
    assert replanned["plan_id"].iloc[0] == pulled_plan["plan_id"].iloc[0]
    pd.testing.assert_frame_equal(replanned.drop(columns="planned_at"), pulled_plan.drop(columns="planned_at"))


def test_a_drop_only_book_has_an_empty_plan_saying_why(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    result = run_job(Settings.from_env(), "drop_ingest_job")
    assert result.success
    event = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("crm_writeback_plan")
    )
    assert str(event.metadata["crm_snapshot"].value).startswith("none: no CRM API snapshot yet")
    assert event.metadata["records_to_send"].value == 0
    plan = LocalCsvTableStore(data_dir=str(data_dir)).read_previous("crm_writeback_plan")
    assert plan is not None and plan.empty


# --- the acts against a CRM with faults ------------------------------------------------------------------------------


def test_5xx_and_connections_dropped_after_the_write_end_with_log_and_crm_agreeing(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=1200, seed=3, error_rate=0.2, drop_after_write_rate=0.3, fault_seed=9) as url:
        plan = synthetic_plan(url, 1000)
        writes_before = feed_writes(url)
        journal = WritebackJournal(tmp_path)
        with writer(url) as crm:
            summary = apply_plan(plan, journal, crm)
            assert crm.requests > summary.batches_sent  # faults were met and retried
        assert summary.batches_sent == 5 and summary.records["ok"] == 1000
        log = journal.read()
        assert log["crm_client_id"].is_unique and sorted(log["crm_client_id"]) == sorted(plan["crm_client_id"])
        book = assert_log_and_crm_agree(log, url)
        assert (book.loc[plan["crm_client_id"], "owner_email"].values == plan["owner_after"].values).all()
        # no record written twice: one feed entry per planned record, despite the re-sent requests
        written = feed_writes(url).sub(writes_before, fill_value=0)
        assert set(written[written > 0].index) == set(plan["crm_client_id"]) and (written[written > 0] == 1).all()


def test_an_apply_with_the_crm_down_fails_after_its_retries_and_logs_nothing(tmp_path: Path) -> None:
    journal = WritebackJournal(tmp_path)
    with run_writable_mock_api(clients=700, seed=4) as url:
        plan = synthetic_plan(url, 600)
    # the CRM is gone: the apply fails after its retries, naming what to do, and logs nothing
    with CrmWriter(url, WRITE_TOKEN, backoff_seconds=0.01, max_retries=2) as crm:
        with pytest.raises(WritebackError, match="still failed after 2 retries.*resumes where it stopped"):
            apply_plan(plan, journal, crm)
    assert journal.read().empty


KILLED_APPLY = """
import sys
import pandas as pd
from crm_territory.logic.writeback.apply import apply_plan
from crm_territory.logic.writeback.client import CrmWriter
from crm_territory.logic.writeback.journal import WritebackJournal

url, token, folder = sys.argv[1:4]
with CrmWriter(url, token) as crm:
    apply_plan(pd.read_pickle(folder + "/plan.pkl"), WritebackJournal(folder), crm)
"""


def test_a_killed_apply_resumes_where_it_stopped_without_writing_a_record_twice(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=1000, seed=8, latency_ms=700) as url:
        plan = synthetic_plan(url, 800)  # 4 batches, each answered after 0.7 s
        plan.to_pickle(tmp_path / "plan.pkl")
        writes_before = feed_writes(url)
        journal = WritebackJournal(tmp_path)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_APPLY, url, WRITE_TOKEN, str(tmp_path)], env=env)
        try:
            deadline = time.monotonic() + 30
            while journal.read().empty and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        logged = journal.read()
        assert 200 <= len(logged) < 800  # killed with batches left
        with writer(url) as crm:
            summary = apply_plan(plan, journal, crm)
        assert summary.batches_skipped == len(logged) // 200 and summary.batches_sent == 4 - summary.batches_skipped
        log = journal.read()
        assert log["crm_client_id"].is_unique and len(log) == 800 and set(log["status"]) == {"ok"}
        assert_log_and_crm_agree(log, url)
        written = feed_writes(url).sub(writes_before, fill_value=0)
        assert set(written[written > 0].index) == set(plan["crm_client_id"]) and (written[written > 0] == 1).all()


def test_rollback_does_not_clobber_a_record_changed_since_and_a_second_rollback_sends_nothing(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=300, seed=6) as url:
        plan = synthetic_plan(url, 150)
        journal = WritebackJournal(tmp_path)
        with writer(url) as crm:
            apply_plan(plan, journal, crm)
            batch = journal.read()["batch_id"].iloc[0]
            changed_since = plan["crm_client_id"].iloc[0]
            set_fields(url, changed_since, territory_id="CRM_USER_T")
            before = crm_book(url)
            summary = rollback_batch(batch, journal, crm)
            assert summary.records["ok"] == 149 and summary.records["conflict"] == 1
            again = rollback_batch(batch, journal, crm)
            assert again.batches_sent == 0
        after = crm_book(url)
        assert after.loc[changed_since, "territory_id"] == "CRM_USER_T"
        assert after.loc[changed_since, "etag"] == before.loc[changed_since, "etag"]
        others = plan["crm_client_id"].iloc[1:]
        assert (after.loc[others, "owner_email"].fillna("").values == plan["owner_before"].iloc[1:].fillna("").values).all()
        assert after.loc[others, "territory_id"].isna().all()
        rollback_log = journal.read().query("action == 'rollback'")
        conflict = rollback_log.set_index("crm_client_id").loc[changed_since]
        assert conflict["status"] == "conflict" and conflict["crm_territory"] == "CRM_USER_T"


def test_a_read_only_token_is_refused_with_a_clear_error_and_nothing_logged(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=50, seed=2) as url:
        plan = synthetic_plan(url, 10)
        journal = WritebackJournal(tmp_path)
        with CrmWriter(url, TEST_TOKEN) as crm:
            with pytest.raises(WritebackError, match=r"HTTP 403\): the token has no write scope.*CRM_WRITE_TOKEN") as raised:
                apply_plan(plan, journal, crm)
        assert TEST_TOKEN not in str(raised.value)
        assert journal.read().empty
        assert (crm_book(url).loc[plan["crm_client_id"], "etag"].values == plan["etag"].values).all()


def test_a_429_storm_is_waited_out_with_retry_after_and_every_batch_lands_once(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=600, seed=12, write_rate_limit=1) as url:
        plan = synthetic_plan(url, 600)  # 3 batches sent back to back against 1 write a second
        writes_before = feed_writes(url)
        journal = WritebackJournal(tmp_path)
        with writer(url) as crm:
            summary = apply_plan(plan, journal, crm)
            assert crm.requests > 3  # some were answered 429 and sent again after Retry-After
        assert summary.records["ok"] == 600
        assert_log_and_crm_agree(journal.read(), url)
        written = feed_writes(url).sub(writes_before, fill_value=0)
        assert (written[written > 0] == 1).all() and len(written[written > 0]) == 600


# --- issue 13's done-when: a rules change previewed, activated, applied, re-applied, rolled back ------------------

#: A candidate rule, in the rules file's own syntax: Southwest's retail clients go to West x Retail (the worked
#: example's rule). It takes precedence over the seed's catch-all (priority 1000).
SOUTHWEST_RETAIL_INTO_WEST = """\
    - id: southwest-retail-into-west
      priority: 50
      when: {region: {eq: Southwest}, segment: {eq: Retail}}
      assign: {region: West, segment: Retail}
"""


def test_a_rules_change_previewed_activated_and_applied_moves_exactly_the_previewed_clients_in_the_crm(live, capsys) -> None:
    """Issue 13's done-when on the real parts: the pipeline, the preview/activation, the CLI, the mock CRM over HTTP.

    Start: the first run places the book and its plan is applied, then a run pulls the CRM again, so the CRM holds
    the engine's assignments and the snapshot their etags: the plan is empty (refused rows aside) and anything the
    rules change plans afterwards comes from the rules change alone.
    """
    settings, url = live
    instance = dg.DagsterInstance.ephemeral()  # one instance: activation looks up what was previewed in it

    def run(job: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return (
            build_definitions(settings)
            .resolve_job_def(job)
            .execute_in_process(instance=instance, raise_on_error=False, run_config={**QUIET, **(run_config or {})})
        )

    store = LocalCsvTableStore(data_dir=str(settings.data_dir))

    def sends() -> pd.DataFrame:
        plan = store.read_previous("crm_writeback_plan")
        assert plan is not None
        return plan[plan["status"] == "send"].set_index("crm_client_id")

    # baseline: the CRM holds the engine's current assignments and the snapshot holds what the CRM holds
    assert run("materialize_all_job").success
    assert len(sends()) > 0
    assert cli.main(["writeback", "apply"]) == 0
    assert run("crm_api_pull_job").success
    assert sends().empty
    baseline_log = len(WritebackJournal(settings.data_dir).read())

    # a candidate rules change, previewed (nothing moves) then activated
    active = settings.data_dir / "rules" / "territory_rules.yaml"
    candidate = settings.data_dir / "rules" / "candidate" / "territory_rules.yaml"
    candidate.parent.mkdir(parents=True, exist_ok=True)
    text = active.read_text()
    assert text.count("  rules:\n") == 1
    candidate.write_text(text.replace("  rules:\n", "  rules:\n" + SOUTHWEST_RETAIL_INTO_WEST))
    version = load_rules(candidate).version
    before = crm_book(url)
    assert run("preview_rules_job").success
    preview = store.read_previous("assignments_preview")
    assert preview is not None and set(preview["candidate_version"]) == {version}
    pd.testing.assert_frame_equal(crm_book(url), before)  # a preview writes nothing
    assert run("activate_rules_job", {"ops": {"activate_candidate_rules": {"config": {"version": version}}}}).success

    # the previewed clients, as CRM records (client_xref: the pipeline's own key map, not the write-back's)
    xref = store.read_previous("client_xref")
    assert xref is not None
    crm_xref = xref[xref["source_system"] == "crm_api"]
    previewed = crm_xref.merge(preview, on="client_key").set_index("source_record_id")
    expected = previewed[["territory_after", "advisor_after"]]  # what each previewed CRM record should hold
    # the rule moves Southwest's retail clients to one new territory; the rest of the preview is advisors rebalanced
    rehomed = previewed["territory_after"] != previewed["territory_before"]
    (southwest_retail,) = set(previewed.loc[rehomed, "territory_before"])  # one region's retail territory
    assert rehomed.sum() >= 2 and southwest_retail.startswith("SOU_RET")
    (west,) = set(previewed.loc[rehomed, "territory_after"])
    assert west.startswith("WES_RET")
    # the CRM holds the "before" side of the preview for every previewed record
    assert (before.loc[expected.index, "territory_id"] == previewed["territory_before"]).all()
    assert (before.loc[expected.index, "owner_email"].fillna("") == previewed["advisor_before"].fillna("")).all()

    # a run that pulls the CRM recomputes the plan: the previewed records, nothing else
    assert run("crm_api_pull_job").success
    planned = sends()
    assert sorted(planned.index) == sorted(expected.index)
    assert (planned.loc[expected.index, "territory_after"] == expected["territory_after"]).all()

    # a CRM user edits one planned client between plan and apply
    edited = expected.index[rehomed][0]
    assert set_fields(url, edited, owner_email=CRM_USER_OWNER).status_code == 200
    before = crm_book(url)

    assert cli.main(["writeback", "apply"]) == 3  # done, with a conflict to review
    after = crm_book(url)
    moved = expected.index.drop(edited)
    assert (after.loc[moved, "territory_id"] == expected.loc[moved, "territory_after"]).all()
    assert (after.loc[moved, "owner_email"].fillna("") == expected.loc[moved, "advisor_after"].fillna("")).all()
    assert (after.loc[moved, "etag"] != before.loc[moved, "etag"]).all()
    assert after.loc[edited].equals(before.loc[edited])  # left as the CRM user set it
    assert after.loc[edited, "owner_email"] == CRM_USER_OWNER
    others = before.index.difference(expected.index)
    pd.testing.assert_frame_equal(after.loc[others], before.loc[others])  # every other client unchanged
    assert sorted(after.index) == sorted(before.index)
    changed = after.index[(after.fillna("") != before.loc[after.index].fillna("")).any(axis=1)]
    assert sorted(changed) == sorted(moved)  # what changed in the CRM is the preview, less the CRM user's edit
    new_rows = WritebackJournal(settings.data_dir).read().iloc[baseline_log:]
    log = new_rows[new_rows["status"] != "refused"]  # the plan's refused rows (no active advisor) are listed again
    assert sorted(log["crm_client_id"]) == sorted(expected.index)
    statuses = log.set_index("crm_client_id")["status"]
    assert statuses[edited] == "conflict" and set(statuses.drop(edited)) == {"ok"}
    conflict = log.set_index("crm_client_id").loc[edited]
    assert (
        conflict["crm_owner"] == CRM_USER_OWNER and conflict["territory_after"] == west == expected.loc[edited, "territory_after"]
    )

    # a second apply sends nothing
    writes = feed_writes(url).sum()
    capsys.readouterr()
    assert cli.main(["writeback", "apply"]) == 0
    assert "0 batch(es) sent, 1 already done" in capsys.readouterr().out
    assert feed_writes(url).sum() == writes
    pd.testing.assert_frame_equal(crm_book(url), after)
    assert len(WritebackJournal(settings.data_dir).read()) == baseline_log + len(new_rows)

    # rolling back the batch restores the moved clients; the CRM user's edit stays
    (batch,) = set(log["batch_id"])  # fewer than 200 records: one batch
    assert cli.main(["writeback", "rollback", "--batch", batch]) == 0
    restored = crm_book(url)
    pd.testing.assert_frame_equal(restored.loc[others], before.loc[others])
    assert (restored.loc[moved, "territory_id"] == before.loc[moved, "territory_id"]).all()
    assert (restored.loc[moved, "owner_email"].fillna("") == before.loc[moved, "owner_email"].fillna("")).all()
    assert restored.loc[edited].equals(before.loc[edited])


def test_a_record_gone_from_the_crm_since_the_pull_is_logged_not_found_and_the_rest_lands(tmp_path: Path) -> None:
    """The mock CRM cannot delete a record, so the plan names ids it never had: to the CRM that is the same thing."""
    with run_writable_mock_api(clients=300, seed=13) as url:
        plan = synthetic_plan(url, 250)
        gone = plan.index[:3]
        plan.loc[gone, "crm_client_id"] = ["CLT-GONE-1", "CLT-GONE-2", "CLT-GONE-3"]
        journal = WritebackJournal(tmp_path)
        with writer(url) as crm:
            summary = apply_plan(plan, journal, crm)
        assert summary.records["not_found"] == 3 and summary.records["ok"] == 247
        log = journal.read().set_index("crm_client_id")
        assert set(log.index[log["status"] == "not_found"]) == {"CLT-GONE-1", "CLT-GONE-2", "CLT-GONE-3"}
        assert log.loc[["CLT-GONE-1", "CLT-GONE-2", "CLT-GONE-3"], "etag_after"].isna().all()
        assert_log_and_crm_agree(journal.read()[lambda f: f["status"] != "not_found"], url)
        assert set(crm_book(url).index).isdisjoint({"CLT-GONE-1", "CLT-GONE-2", "CLT-GONE-3"})


def test_a_wrong_token_is_refused_naming_the_variable_and_nothing_is_logged_or_written(tmp_path: Path) -> None:
    with run_writable_mock_api(clients=50, seed=2) as url:
        plan = synthetic_plan(url, 10)
        journal = WritebackJournal(tmp_path)
        with CrmWriter(url, "not-the-write-token") as crm:
            with pytest.raises(WritebackError, match=r"refused the write token \(HTTP 401\).*CRM_WRITE_TOKEN") as raised:
                apply_plan(plan, journal, crm)
        assert "not-the-write-token" not in str(raised.value)
        assert journal.read().empty
        assert (crm_book(url).loc[plan["crm_client_id"], "etag"].values == plan["etag"].values).all()


def test_requests_that_time_out_after_the_crm_applied_them_are_resumed_without_writing_twice(tmp_path: Path) -> None:
    """Every request outlives the writer's timeout, so the apply stops; the CRM applied the writes anyway (the client
    gave up, not the server). The resumed apply re-sends the batches with their keys: each record is written once,
    and the log and the CRM agree."""
    with run_writable_mock_api(clients=500, seed=14, latency_ms=600) as url:
        plan = synthetic_plan(url, 400)
        writes_before = feed_writes(url)
        journal = WritebackJournal(tmp_path)
        with CrmWriter(url, WRITE_TOKEN, timeout_seconds=0.3, backoff_seconds=0.01, max_retries=1) as impatient:
            with pytest.raises(WritebackError, match="still failed after 1 retries"):
                apply_plan(plan, journal, impatient)
        assert journal.read().empty  # nothing answered, nothing logged
        time.sleep(1.5)  # the CRM finishes what it started
        with writer(url) as crm:
            summary = apply_plan(plan, journal, crm)
        assert summary.records["ok"] == 400 and summary.batches_sent == 2
        log = journal.read()
        assert log["crm_client_id"].is_unique and set(log["status"]) == {"ok"}
        assert_log_and_crm_agree(log, url)
        written = feed_writes(url).sub(writes_before, fill_value=0)
        assert set(written[written > 0].index) == set(plan["crm_client_id"]) and (written[written > 0] == 1).all()
