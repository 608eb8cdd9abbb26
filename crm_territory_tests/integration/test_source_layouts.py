"""The shipped worked example end to end: the Maven CRM accounts export and its layout, as a fresh clone has them.

data/landing/maven_crm/accounts.csv (85 accounts, 15 with a parent in subsidiary_of) is read with
data/sources/maven_crm.yaml through the drop-ingest job: 85 clients with their parents, beside the seed's drop.
"""

import csv
import shutil

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, REPO_ROOT

pytestmark = pytest.mark.integration

MAVEN = REPO_ROOT / "data" / "landing" / "maven_crm" / "accounts.csv"


@pytest.fixture
def settings(monkeypatch, tmp_path) -> Settings:
    """The committed data folder as a fresh clone has it, source layouts included; no CRM API."""
    data_dir = tmp_path / "data"
    for sub in ("landing", "reference", "rules", "matching", "sources"):
        shutil.copytree(REPO_ROOT / "data" / sub, data_dir / sub)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_LANDING_SETTLE_SECONDS", "0")
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    monkeypatch.delenv("CRM_API_URL", raising=False)
    return Settings.from_env()


def test_the_maven_accounts_become_85_clients_with_their_parents(settings):
    result = (
        build_definitions(settings)
        .resolve_job_def("drop_ingest_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    )
    assert result.success
    store = CsvTables(settings.data_dir)
    manifest = store.read("ingest_manifest").set_index("batch")
    maven = manifest.loc["maven_crm/accounts.csv"]
    assert (maven["source_system"], maven["status"], maven["rows_read"], maven["rows_loaded"], maven["rows_quarantined"]) == (
        "maven_crm", "loaded", 85, 85, 0,
    )  # fmt: skip
    assert manifest.loc["clients.csv", "rows_loaded"] == 3  # the seed's drop still loads in its layout

    with MAVEN.open(newline="") as handle:
        accounts = {row["account"]: row for row in csv.DictReader(handle)}
    dim = store.read("client_dim")
    xref = store.read("client_xref")
    records = xref[xref["source_system"] == "maven_crm"]
    assert len(records) == 85 and records["client_key"].nunique() == 85  # 85 accounts, 85 clients
    clients = dim[dim["client_key"].isin(records["client_key"])].set_index("client_name")
    assert sorted(clients.index) == sorted(accounts)
    # the account families: every subsidiary names its parent, and every parent is itself one of the clients
    parents = {name: row["subsidiary_of"] or None for name, row in accounts.items()}
    assert clients["parent_org"].where(clients["parent_org"].notna(), None).to_dict() == parents
    assert sum(p is not None for p in parents.values()) == 15
    assert set(filter(None, parents.values())) <= set(clients.index)
    assert clients.loc["Bubba Gump", "segment"] == "Institutional" and (clients["source_system"] == "maven_crm").all()
    assert clients.loc["Acme Corporation", "business_type"] == "Technology"  # the source's "technolgy", mapped

    raw = store.read("raw_clients")
    acme = raw[(raw["source_system"] == "maven_crm") & (raw["client_name"] == "Acme Corporation")].iloc[0]
    assert (acme["revenue_usd"], acme["country"]) == ("1100040000", "United States")  # 1,100.04 millions
    assert raw.loc[raw["client_name"] == "Bioholding", "country"].iloc[0] == "Philippines"
    assert pd.isna(acme["region"])  # a country names no region of ours: left unknown, not guessed
