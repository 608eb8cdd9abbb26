"""A run's CSV tables published as one set (crm_territory/storage/csv_set.py): staging, commit, roll-forward, recovery.

The states a killed run can leave are built here step by step with the real functions (the end-to-end
SIGKILLs are in crm_territory_tests/integration/test_publish_faults.py).
"""

import json
import os
import threading
import time

import pandas as pd
import pytest

from crm_territory.storage.csv_set import COMMIT_RECORD, CsvTableSet, published_tables
from crm_territory.storage.csv_tables import CsvTables, TableNotFoundError
from crm_territory_tests.unit.test_storage import tables as sample_tables

OLD, NEW = "run-old-0000", "run-new-1111"


@pytest.fixture
def book(reference):
    return sample_tables(reference)


def client_dim_with(book, name: str) -> pd.DataFrame:
    return book["client_dim"].assign(client_name=name)


def published_names(tables: CsvTableSet) -> set[str]:
    return set(tables.read_published("client_dim")["client_name"])


def test_staged_tables_are_invisible_until_the_run_publishes_then_all_appear_at_once(tmp_path, book):
    tables = CsvTableSet(tmp_path)
    tables.stage(OLD, "client_dim", client_dim_with(book, "old"))
    tables.stage(OLD, "assignments_fact", book["assignments_fact"])
    assert not tables.published.exists("client_dim") and not tables.published.exists("assignments_fact")
    assert tables.read_published_if_exists("client_dim") is None
    # the run itself reads what it staged
    assert set(tables.read_for_run(OLD, "client_dim")["client_name"]) == {"old"}

    assert tables.publish(OLD) == ["client_dim", "assignments_fact"]  # TABLES order
    assert published_names(tables) == {"old"}
    pd.testing.assert_frame_equal(tables.read_published("assignments_fact"), CsvTables(tmp_path).read("assignments_fact"))
    assert not tables.staging_dir(OLD).exists()
    assert {t: m["run_id"] for t, m in tables.manifest().items()} == {"client_dim": OLD, "assignments_fact": OLD}


def test_a_run_that_fails_publishes_nothing_and_says_which_tables_it_dropped(tmp_path, book):
    tables = CsvTableSet(tmp_path)
    tables.stage(OLD, "client_dim", client_dim_with(book, "old"))
    tables.publish(OLD)
    tables.stage(NEW, "client_dim", client_dim_with(book, "new"))
    tables.stage(NEW, "raw_clients", book["raw_clients"])
    said: list[str] = []
    assert tables.discard(NEW, said.append, " because step(s) territory_dim failed") == ["raw_clients", "client_dim"]
    assert published_names(tables) == {"old"}
    assert not tables.published.exists("raw_clients")
    assert not tables.staging_dir(NEW).exists()
    assert "None of the 2 table(s) run run-new- wrote was published because step(s) territory_dim failed" in said[0]
    assert tables.manifest()["client_dim"]["run_id"] == OLD


def test_recovery_removes_what_a_run_killed_before_its_commit_staged_and_says_so(tmp_path, book):
    tables = CsvTableSet(tmp_path)
    tables.stage(OLD, "client_dim", client_dim_with(book, "old"))
    tables.publish(OLD)
    tables.stage(NEW, "client_dim", client_dim_with(book, "new"))  # ... and then the run was killed
    (tables.staging_dir(NEW) / "core" / ".client_dim.csv.x1y2.tmp").write_text("half a table")  # a write cut short
    # an older version's per-table temp file, left beside the published table by a killed run (the probe's 9.5 MB file)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / ".raw_clients.csv.xwd3a0kn.tmp").write_text("left behind")
    assert published_names(tables) == {"old"}  # readers never saw the staged table

    said: list[str] = []
    assert tables.recover(said.append) == {"rolled_forward": [], "removed": [NEW]}
    assert not tables.staging_root.exists() or not any(tables.staging_root.iterdir())
    assert not (tmp_path / "raw" / ".raw_clients.csv.xwd3a0kn.tmp").exists()
    assert published_names(tables) == {"old"}
    assert "Removed the unpublished staging of run run-new- (2 file(s)" in said[0]
    assert "none of its tables was ever visible" in said[0]
    assert "a temp file a killed run left behind" in said[1]
    assert tables.recover(said.append) == {"rolled_forward": [], "removed": []}  # nothing left: idempotent


def test_a_run_killed_after_its_commit_is_already_the_published_set_and_recovery_finishes_the_move(tmp_path, book):
    tables = CsvTableSet(tmp_path)
    tables.stage(OLD, "client_dim", client_dim_with(book, "old"))
    tables.stage(OLD, "assignments_fact", book["assignments_fact"].iloc[:1])
    tables.publish(OLD)
    new_fact = book["assignments_fact"]
    tables.stage(NEW, "client_dim", client_dim_with(book, "new"))
    tables.stage(NEW, "assignments_fact", new_fact)
    # the commit record is written and ONE of the two files was moved into place: then SIGKILL
    (tables.staging_dir(NEW) / COMMIT_RECORD).write_text(
        json.dumps({"run_id": NEW, "tables": ["client_dim", "assignments_fact"], "committed_at": "2026-12-06T00:00:00Z"})
    )
    os.replace(tables.staged(NEW).path_for("client_dim"), tables.published.path_for("client_dim"))

    # readers see the new set whole: the moved file in place, the other through the commit record
    assert published_names(tables) == {"new"}
    assert len(tables.read_published("assignments_fact")) == len(new_fact)
    # a plain read of the published path would mix the sets: that is what recovery repairs
    assert len(CsvTables(tmp_path).read("assignments_fact")) == 1

    said: list[str] = []
    assert tables.recover(said.append) == {"rolled_forward": [NEW], "removed": []}
    assert len(CsvTables(tmp_path).read("assignments_fact")) == len(new_fact)
    assert set(CsvTables(tmp_path).read("client_dim")["client_name"]) == {"new"}
    assert not tables.staging_dir(NEW).exists()
    assert {m["run_id"] for m in tables.manifest().values()} == {NEW}
    assert "finished the move" in said[0]


def test_a_table_never_written_is_not_found_through_the_set(tmp_path):
    tables = CsvTableSet(tmp_path)
    with pytest.raises(TableNotFoundError):
        tables.read_published("client_dim")
    with pytest.raises(TableNotFoundError):
        tables.read_for_run(NEW, "client_dim")
    assert tables.publish(NEW) == []  # a run that wrote nothing publishes nothing


def test_a_reader_of_several_tables_holds_off_a_publish_until_it_is_done(tmp_path, book):
    tables = CsvTableSet(tmp_path)
    tables.stage(OLD, "client_dim", client_dim_with(book, "old"))
    tables.publish(OLD)
    tables.stage(NEW, "client_dim", client_dim_with(book, "new"))
    published = threading.Event()

    def publish() -> None:
        CsvTableSet(tmp_path).publish(NEW)
        published.set()

    with published_tables(tmp_path) as reading:
        first = set(reading.read_published("client_dim")["client_name"])
        publisher = threading.Thread(target=publish)
        publisher.start()
        time.sleep(0.3)  # room for the publisher to run, were it not held off
        assert not published.is_set()
        second = set(reading.read_published("client_dim")["client_name"])
    publisher.join(timeout=30)
    assert first == second == {"old"}  # one consistent set inside the block
    assert published.is_set() and published_names(tables) == {"new"}
