"""The fault suite: a real ``cli run`` SIGKILLed at each step of publishing, two runs at once, hostile drops.

Each case asserts what a reader sees afterwards: the published set is whole (entirely the previous
run's tables, or entirely the new run's), its integrity rules hold (no fact row without its client,
every active client with one current PRIMARY, every source record in one client), and rows in = rows
loaded + rows quarantined for every batch. The next run then recovers and says what it did.

The probe this answers (finding 1): SIGKILL right after client_dim.csv was replaced left 19,413
assignments_fact keys missing from client_dim; right after raw_clients.csv, a new drop's quarantined
rows were nowhere; a 9.5 MB temp file stayed behind for good.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crm_territory.logic.integrity import (
    active_clients_without_one_current_primary,
    orphan_fact_rows,
    records_not_in_one_client,
    unbalanced_batches,
)
from crm_territory.schemas import TABLES
from crm_territory.storage.csv_set import CsvTableSet, published_tables
from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.cli_run import cli_run_env
from crm_territory_tests.support.compare_tables import comparable
from crm_territory_tests.support.mock_api_server import TEST_TOKEN

pytestmark = pytest.mark.integration

MOCK_API_BOOK = {"clients": 300, "seed": 11}

# a new drop: two new clients and one row the engine must quarantine (an id it refuses)
NEW_DROP = (
    "client_id,client_name,region,segment,parent_org,advisor_email\n"
    "501,Quillon Harbour Advisors,Northeast,Retail,,advisor1@example.com\n"
    "502,Ravenmoor Family Office,Midwest,Institutional,,advisor2@example.com\n"
    "+3,Not A Valid Id,Northeast,Retail,,\n"
)


def env_for(data_dir: Path, dagster_home: Path, api_url: str) -> dict[str, str]:
    return cli_run_env(
        data_dir, dagster_home, api_url, TEST_TOKEN, drop_prefixes=("CRM_", "MOCK_CRM_", "SNOWFLAKE_", "DAGSTER_HOME")
    )


def cli(data_dir: Path, api_url: str, *module_and_args: str) -> subprocess.CompletedProcess[str]:
    home = data_dir.parent / f"{data_dir.name}.dagster_home"
    home.mkdir(exist_ok=True)
    args = module_and_args or ("crm_territory.cli", "run")
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=env_for(data_dir, home, api_url),
        capture_output=True,
        text=True,
        timeout=600,
    )


def published(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table of the published set, read as readers read it (one consistent set)."""
    with published_tables(data_dir) as tables:
        return {name: frame for name in TABLES if (frame := tables.read_published_if_exists(name)) is not None}


def assert_whole_and_sound(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The published set keeps its keys and its row counts; returns it."""
    t = published(data_dir)
    assert orphan_fact_rows(t["assignments_fact"], t["client_dim"], t["territory_dim"]).empty
    assert active_clients_without_one_current_primary(t["assignments_fact"], t["client_dim"]).empty
    assert records_not_in_one_client(t["raw_clients"], t["client_xref"]).empty
    assert unbalanced_batches(t["ingest_manifest"], t["raw_clients"], t["quarantined_clients"]).empty
    return t


def assert_same_tables(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], label: str) -> None:
    assert set(actual) == set(expected), label
    different = [name for name in expected if not comparable(actual[name]).equals(comparable(expected[name]))]
    assert different == [], f"{label}: these tables differ from the expected set: {different}"


@pytest.fixture(scope="module")
def states(tmp_path_factory, mock_api):
    """``old``: a data folder after a good run, with a new drop landed since; the sets before and after that drop."""
    root = tmp_path_factory.mktemp("faults")
    old = root / "old"
    for part in ("landing", "reference", "rules", "matching"):
        shutil.copytree(REPO_ROOT / "data" / part, old / part)
    first = cli(old, mock_api)
    assert first.returncode == 0, first.stdout + first.stderr
    old_set = assert_whole_and_sound(old)
    (old / "landing" / "2026-12-06_new_clients.csv").write_text(NEW_DROP)

    reference = root / "reference_new"
    shutil.copytree(old, reference)
    second = cli(reference, mock_api)
    assert second.returncode == 0, second.stdout + second.stderr
    new_set = assert_whole_and_sound(reference)
    assert len(new_set["raw_clients"]) == len(old_set["raw_clients"]) + 2  # the drop changes the set
    assert len(new_set["quarantined_clients"]) == len(old_set["quarantined_clients"]) + 1
    return {"root": root, "old": old, "old_set": old_set, "new_set": new_set, "api": mock_api}


@pytest.mark.parametrize(
    ("point", "n", "published_is"),
    [
        ("staged", 1, "old"),  # the first table staged (the API snapshot)
        ("staged", 8, "old"),  # half way: raw, quarantine, xref staged; the core tables not yet
        ("committed", 1, "new"),  # the commit record written, no file moved yet
        ("moved", 5, "new"),  # five files moved into place, the rest not
        ("manifest", 1, "new"),  # every file moved, the staging folder still there
    ],
)
def test_a_run_killed_while_publishing_leaves_a_whole_set_and_the_next_run_recovers(states, tmp_path, point, n, published_is):
    data_dir = tmp_path / "data"
    shutil.copytree(states["old"], data_dir)
    killed = cli(data_dir, states["api"], "crm_territory_tests.support.killed_run", point, str(n))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert f"SIGKILL at {point} #{n}" in killed.stdout

    # what any reader sees now: one whole set, the old one or the new one, never a mix
    assert_same_tables(assert_whole_and_sound(data_dir), states[f"{published_is}_set"], f"after SIGKILL at {point} #{n}")
    assert (data_dir / ".staging").is_dir()  # the dead run's leftovers, for the next run to deal with

    recovered = cli(data_dir, states["api"])
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    said = recovered.stdout + recovered.stderr
    if published_is == "old":
        assert "Removed the unpublished staging of run" in said and "the published set is unchanged" in said
    else:
        assert "finished the move" in said
    assert not any((data_dir / ".staging").iterdir())
    assert f"published          {len(TABLES)} table(s) of this run, as one set" in recovered.stdout
    assert_same_tables(assert_whole_and_sound(data_dir), states["new_set"], f"after the run that followed {point} #{n}")
    # what the kill left half-moved is now moved: the plain files are the published set
    assert {m["run_id"] for m in CsvTableSet(data_dir).manifest().values()}


def test_a_run_whose_step_fails_publishes_none_of_its_tables(states, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(states["old"], data_dir)
    rules = data_dir / "rules" / "territory_rules.yaml"
    rules.write_text(rules.read_text() + "\nthis is: [not valid yaml\n")  # territory_rules fails, after raw_clients etc.
    failed = cli(data_dir, states["api"])
    assert failed.returncode == 1
    said = failed.stdout + failed.stderr
    assert "step territory_rules failed" in said
    assert "wrote was published because step(s) territory_rules failed" in said
    first_run = CsvTableSet(states["old"]).manifest()["client_dim"]["run_id"][:8]
    assert f"published          none of this run's tables; readers still see the tables of run {first_run}" in said
    # raw_clients, client_xref and client_dim were computed from the new drop, and none of them is visible
    assert_same_tables(assert_whole_and_sound(data_dir), states["old_set"], "after a failed run")
    assert not any((data_dir / ".staging").iterdir())


def test_two_runs_at_once_on_one_folder_take_turns_and_leave_one_sound_set(states, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(states["old"], data_dir)
    home = tmp_path / "home"
    home.mkdir()
    env = env_for(data_dir, home, states["api"])
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "crm_territory.cli", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert any("Waiting for run" in out for out in outputs)  # one of them waited for the other's lock
    assert_same_tables(assert_whole_and_sound(data_dir), states["new_set"], "after two runs at once")


def test_hostile_drops_are_refused_alone_and_the_set_stays_sound(states, tmp_path):
    """The probe's hostile landing files, all at once: each refused or quarantined by name; nothing else lost."""
    data_dir = tmp_path / "data"
    shutil.copytree(states["old"], data_dir)
    landing = data_dir / "landing"
    outside = tmp_path / "outside.csv"
    outside.write_text("client_id,client_name,region,segment,parent_org,advisor_email\n9,Secret,Northeast,Retail,,\n")
    (landing / "link_outside.csv").symlink_to(outside)
    header = NEW_DROP.splitlines()[0]
    (landing / "nul_late.csv").write_bytes(
        (header + "\n" + "7,Nul Corp,Northeast,Retail,,\n" * 5000 + "8,Zero\x00,NE,RET,,\n").encode()
    )
    (landing / "cr_only.csv").write_bytes((header + "\r9,Old Mac,Northeast,Retail,,\r").encode())
    (landing / os.fsdecode(b"latin1_\xe9t\xe9.csv")).write_bytes((header + "\n11,Latin Co,Northeast,Retail,,\n").encode())
    (landing / "formula.csv").write_text(header + '\n12,"=HYPERLINK(""http://x"",""y"")",Northeast,Retail,,\n')
    run = cli(data_dir, states["api"])
    said = run.stdout + run.stderr
    assert "rejected files" in said
    tables = assert_whole_and_sound(data_dir)
    manifest = tables["ingest_manifest"].set_index("batch")
    for name in ("link_outside.csv", "nul_late.csv", "cr_only.csv", "latin1_\\xe9t\\xe9.csv"):
        assert manifest.loc[name, "rows_loaded"] == 0, name
    assert "Secret" not in set(tables["raw_clients"]["client_name"])  # the link was never followed
    assert "=HYPERLINK" in " ".join(tables["raw_clients"]["client_name"])  # loaded, and stored as it was
    raw_csv = (data_dir / "raw" / "raw_clients.csv").read_text()
    assert "'=HYPERLINK" in raw_csv and '\n12,"=HYPERLINK' not in raw_csv  # but defused in the file people open
