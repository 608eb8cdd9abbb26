"""The write-back for sources that take files (issue 13, item 5): crm_outbound_plan and ``writeback export``.

On the committed data folder as a fresh clone has it (the seed's drop, the Salesforce and HubSpot exports, the Maven
accounts, their layouts): the import files hold exactly the records whose owner differs from the current PRIMARY
advisor, in each source's own layout; importing them into the exports (what the source would do) and running again,
the engine reads every imported owner back, and asks again only where the assignment itself has moved since.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_territory import cli
from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, REPO_ROOT
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, run_mock_api

pytestmark = pytest.mark.integration

#: source -> (its export under landing/, its id column, its owner column, delimiter, encoding), as its layout says
EXPORTS = {
    "salesforce": ("salesforce/accounts_report.csv", "Account ID", "Account Owner Email", ",", "cp1252"),
    "hubspot": ("hubspot/companies.csv", "Record ID", "Company owner", ",", "utf-8"),
    "csv_drop": ("clients.csv", "client_id", "advisor_email", ",", "utf-8"),
}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """The data folder as a fresh clone has it and the mock CRM as `make run` starts it (its book and the exports
    are drawn from one world): the same book as `make run`'s."""
    data_dir = tmp_path / "data"
    for sub in ("landing", "reference", "rules", "matching", "sources"):
        shutil.copytree(REPO_ROOT / "data" / sub, data_dir / sub)
    with run_mock_api() as url:
        monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
        monkeypatch.setenv("CRM_LANDING_SETTLE_SECONDS", "0")
        monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)
        monkeypatch.setenv("CRM_API_URL", url)
        yield Settings.from_env()


def run(settings: Settings, job: str = "drop_ingest_job") -> None:
    result = (
        build_definitions(settings)
        .resolve_job_def(job)
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    )
    assert result.success


def expected_owners(tables: CsvTables, source: str) -> pd.Series:
    """source_record_id -> the current PRIMARY advisor of its client, from the published tables (not the plan)."""
    fact = tables.read("assignments_fact")
    primary = fact[(fact["assignment_type"] == "PRIMARY") & fact["is_current"]]
    xref = tables.read("client_xref")
    xref = xref[xref["source_system"] == source]
    joined = xref.merge(primary, on="client_key")
    return joined.set_index("source_record_id")["primary_advisor_email"].str.lower()


def import_file_owners(settings: Settings, source: str, plan_id: str) -> pd.Series:
    """id -> owner, as the source's import file written by `writeback export` holds them (read in its own format)."""
    _, id_column, owner_column, delimiter, encoding = EXPORTS[source]
    path = settings.data_dir / "outbound" / source / f"{source}-owners-{plan_id}.csv"
    return pd.read_csv(path, sep=delimiter, encoding=encoding, dtype=str).set_index(id_column)[owner_column]


def read_export(settings: Settings, source: str) -> pd.DataFrame:
    name, id_column, _, delimiter, encoding = EXPORTS[source]
    return pd.read_csv(settings.data_dir / "landing" / name, sep=delimiter, encoding=encoding, dtype=str, keep_default_na=False)


def test_export_writes_each_file_source_its_import_file_which_the_engine_reads_back_once_imported(settings, capsys) -> None:
    run(settings, "materialize_all_job")
    tables = CsvTables(settings.data_dir)
    plan = tables.read("crm_outbound_plan")
    # both exports have owners to change; Maven's accounts have no advisor placed (and no owner column): nothing
    assert {"salesforce", "hubspot"} <= set(plan["source_system"]) <= set(EXPORTS)

    assert cli.main(["writeback", "export"]) == 0
    printed = capsys.readouterr().out
    plan_id = plan["plan_id"].iloc[0]
    for source, (_, id_column, owner_column, delimiter, encoding) in EXPORTS.items():
        # exactly the records whose latest export names another owner than their client's advisor, refused ones aside
        export = read_export(settings, source).drop_duplicates(id_column, keep="last").set_index(id_column)
        wanted = expected_owners(tables, source)
        wanted = wanted[wanted.notna()]
        differs = wanted.index[wanted.to_numpy() != export.loc[wanted.index, owner_column].str.lower().to_numpy()]
        mine = plan[plan["source_system"] == source]
        refused = set(mine.loc[mine["status"] == "refused", "source_record_id"])
        path = settings.data_dir / "outbound" / source / f"{source}-owners-{plan_id}.csv"
        if not set(differs) - refused:
            assert not path.exists() and mine["status"].ne("send").all()
            continue
        assert str(path) in printed
        written = pd.read_csv(path, sep=delimiter, encoding=encoding, dtype=str, keep_default_na=False)
        assert list(written.columns) == [id_column, owner_column]
        assert sorted(written[id_column]) == sorted(set(differs) - refused)
        assert (written.set_index(id_column)[owner_column] == wanted[written[id_column]].to_numpy()).all()
        assert len(written) + len(refused) == len(mine)  # rows in the plan = rows in the file + rows refused
        assert mine.loc[mine["status"] == "refused", "refusal_reason"].notna().all()

    before = {p: p.read_bytes() for p in (settings.data_dir / "outbound").rglob("*.csv")}
    assert cli.main(["writeback", "export"]) == 0  # the same plan: the same files, byte for byte
    assert {p: p.read_bytes() for p in (settings.data_dir / "outbound").rglob("*.csv")} == before

    # the source imports its file (owner column replaced for those ids, in its own encoding) and exports again
    for source in ("salesforce", "hubspot"):
        name, id_column, owner_column, delimiter, encoding = EXPORTS[source]
        imported = import_file_owners(settings, source, plan_id)
        export = read_export(settings, source)
        hit = export[id_column].isin(imported.index)
        export.loc[hit, owner_column] = imported[export.loc[hit, id_column]].to_numpy()
        export.to_csv(settings.data_dir / "landing" / name, sep=delimiter, encoding=encoding, index=False)
    run(settings)  # the drops again, with the CRM snapshot as stored
    tables = CsvTables(settings.data_dir)
    raw = tables.read("raw_clients")
    again = tables.read("crm_outbound_plan")
    first = plan.set_index(["source_system", "source_record_id"])
    for source in ("salesforce", "hubspot"):
        imported = import_file_owners(settings, source, plan_id)
        # the mapping in reverse: the engine reads every imported owner back as that record's owner
        latest = (
            raw[raw["source_system"] == source].drop_duplicates("source_record_id", keep="last").set_index("source_record_id")
        )
        assert (latest.loc[imported.index, "advisor_email"].str.lower() == imported.str.lower()).all()
        # and asks again only where the assignment itself moved since (capacity re-balanced around the new owners)
        still = again[(again["source_system"] == source) & (again["status"] == "send")].set_index("source_record_id")
        moved = still["owner_after"] != first.loc[[(source, i) for i in still.index], "owner_after"].to_numpy()
        assert moved.all(), still[~moved]
        assert len(still) <= len(imported) // 10
    assert ((again["source_system"] == "csv_drop") & (again["status"] == "send")).sum() == (
        (plan["source_system"] == "csv_drop") & (plan["status"] == "send")
    ).sum()  # the seed's drop was not imported: its rows stand
