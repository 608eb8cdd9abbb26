"""Each page of the territory analytics app, run by Streamlit's AppTest on a small book published through the CSV
storage's own publish: it renders without an exception and shows the figures counted by hand from the book."""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from crm_territory.storage.csv_set import CsvTableSet
from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.unit.test_analytics import (
    ADVISORS,
    ASSIGNMENT_HISTORY,
    CLIENT_HISTORY,
    CLIENTS,
    FACT,
    TERRITORIES,
)

APP = str(REPO_ROOT / "crm_territory" / "app" / "main.py")
CANDIDATE = """\
version: 1
territories:
  rules:
    - id: northeast-retail-into-west
      priority: 50
      when: {region: {eq: Northeast}, segment: {eq: Retail}}
      assign: {region: West, segment: Retail}
    - id: by-region-and-segment
      priority: 1000
      when: {region: {not_null: true}, segment: {not_null: true}}
      assign: client
"""


def publish(data_dir: Path, run_id: str, tables: dict[str, pd.DataFrame]) -> None:
    store = CsvTableSet(data_dir)
    for name, frame in tables.items():
        store.stage(run_id, name, frame)
    store.publish(run_id)


@pytest.fixture
def book(tmp_path, monkeypatch) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(REPO_ROOT / "data" / "reference", data_dir / "reference")
    publish(
        data_dir,
        "run-one",
        {
            "client_dim": CLIENTS,
            "territory_dim": TERRITORIES,
            "advisor_dim": ADVISORS,
            "assignments_fact": FACT,
            "client_dim_history": CLIENT_HISTORY,
            "assignments_fact_history": ASSIGNMENT_HISTORY,
        },
    )
    for name in [n for n in list(os.environ) if n.startswith(("SNOWFLAKE_", "CRM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    # the app's source and reads are cached per process: each test starts from its own book
    st.cache_resource.clear()
    st.cache_data.clear()
    return data_dir


def page(name: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if name != "overview":
        at.switch_page(f"views/{name}.py")
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_the_books_numbers_and_the_last_runs_changes(book):
    at = page("overview")
    shown = metrics(at)
    assert (shown["Clients"], shown["Active clients"], shown["Territories"], shown["Active advisors"]) == ("5", "4", "4", "2")
    assert shown["AUM"] == "$0.0M"  # $200: the page shows millions
    assert (shown["New clients"], shown["Clients changed"], shown["Clients gone"]) == ("1", "1", "1")
    assert shown["Placements changed"] == "3"  # k:2 new advisor, k:3 moved, k:6 left; k:4 is new
    assert at.title[0].value == "Territory overview"


def test_territories_page_and_the_drill_down(book):
    at = page("territories")
    shown = metrics(at)
    assert (shown["Territories"], shown["UNASSIGNED clients"], shown["Secondary rows"], shown["Largest territory"]) == (
        "4", "1", "1", "NOR_RET",
    )  # fmt: skip
    summary = at.dataframe[0].value.set_index("Territory")
    assert summary.loc["NOR_RET", "Clients"] == 2 and summary.loc["MID_INS", "Secondary clients"] == 1
    territory = page("territory", {"territory": "NOR_RET"})
    assert territory.title[0].value == "Territory NOR_RET"
    assert metrics(territory)["Clients shown"] == "2" and metrics(territory)["Active PRIMARY clients"] == "2"
    territory.text_input(key="client_search").input("beacon").run()
    assert metrics(territory)["Clients shown"] == "1"
    assert territory.dataframe[0].value["client_key"].tolist() == ["k:2"]
    assert territory.table[0].value["Placed by"].tolist() == ["by-region-and-segment"]


def test_advisors_page_flags_the_overloaded_advisor_and_the_advisor_change(book):
    at = page("advisors")
    shown = metrics(at)
    assert (shown["Active advisors"], shown["Over capacity"], shown["Highest utilisation"]) == ("2", "1", "200%")
    assert shown["Clients that changed advisor"] == "1"
    over = at.table[0].value
    assert over["Advisor"].tolist() == ["a@x.com"] and "6 places" in over["Why over capacity"].iloc[0]


def test_families_page(book):
    shown = metrics(page("families"))
    assert (shown["Families"], shown["Split across territories"], shown["Clients in families"], shown["Largest family (AUM)"]) == (
        "2", "1", "4", "P1",
    )  # fmt: skip


def test_rules_preview_without_a_candidate_says_so(book):
    at = page("rules_preview")
    assert metrics(at)["Clients changing"] == "0"
    assert "No candidate rules file" in at.info[0].value


def test_rules_preview_evaluates_a_candidate_the_last_run_did_not_preview(book):
    (book / "rules" / "candidate").mkdir(parents=True)
    (book / "rules" / "candidate" / "territory_rules.yaml").write_text(CANDIDATE)
    at = page("rules_preview")
    assert "evaluated now" in at.warning[0].value
    assert metrics(at)["Changing territory"] == "2"  # Atlas and Beacon, the Northeast retail clients
    flows = at.table[0].value
    assert flows.values.tolist() == [["NOR_RET", "WES_RET", 2]]


def test_history_page_answers_who_owned_a_client_on_a_date(book):
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("views/history.py")
    at.run()
    at.text_input(key="history_search").input("beacon")
    at.date_input(key="history_date").set_value(pd.Timestamp("2026-03-15").date())
    at.run()
    assert not at.exception
    assert at.selectbox(key="history_client").value == "k:2"  # the only client whose name holds it
    owner = at.table[0].value
    assert owner[["Assignment", "Territory", "Advisor"]].values.tolist()[0] == ["PRIMARY", "NOR_RET", "a@x.com"]
    assert metrics(at)["Active clients placed then"] == "4"  # k:1, k:2, k:3, k:6 in mid-March


def test_quality_page(book):
    shown = metrics(page("quality"))
    assert (shown["Quarantined rows"], shown["Unknown spellings"], shown["Possible duplicates"]) == ("0", "2", "0")
    assert shown["Rejected or deferred files"] == "0"


def test_a_new_publish_is_picked_up_on_the_next_page_load(book):
    assert metrics(page("overview"))["Clients"] == "5"
    publish(book, "run-two", {"client_dim": CLIENTS.iloc[:3]})
    assert metrics(page("overview"))["Clients"] == "3"


def test_a_long_table_sends_its_first_rows_and_says_how_many_there_are():
    def script():
        import pandas as pd

        from crm_territory.app import ui

        ui.rows(pd.DataFrame({"n": range(ui.SHOWN_ROWS + 7)}))

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert at.dataframe[0].value["n"].tolist() == list(range(5000))
    assert at.caption[0].value == "The first 5,000 of 5,007 rows; the CSV download has them all."


def test_before_any_run_every_page_renders_and_the_overview_says_to_run_first(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith(("SNOWFLAKE_", "CRM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path / "empty"))
    st.cache_resource.clear()
    st.cache_data.clear()
    overview = page("overview")
    assert metrics(overview)["Clients"] == "0"
    assert "run the pipeline first" in overview.info[0].value
    for name in ("territories", "territory", "advisors", "families", "rules_preview", "history", "quality"):
        page(name)  # renders without an exception (asserted in page())


def test_the_bench_helper_times_every_page_on_a_published_folder(book, monkeypatch):
    from crm_territory_tests.benchmarks.app_pages import PAGES, time_pages

    monkeypatch.setenv("CRM_STORAGE", "local")  # time_pages sets both for its process: restored after the test
    rows = time_pages(book)
    assert [row["page"] for row in rows] == list(PAGES)
    assert all(row["seconds_first"] >= 0 and row["seconds_cached"] >= 0 for row in rows)


def test_the_app_reads_only_its_own_tables(book):
    from crm_territory.app.data import CsvSource

    source = CsvSource(book)
    assert len(source.read("client_dim")) == 5
    with pytest.raises(ValueError, match="does not read 'raw_clients'"):
        source.read("raw_clients")  # whole source records: not the app's business
