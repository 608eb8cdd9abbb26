"""The analytics app in a real browser after a real run: ``python -m crm_territory.cli run --start-mock-api`` (what
``make run`` executes) on the sample book, then ``streamlit run`` as ``make app`` starts it, driven in Debian's chromium.

Every page is opened; its figures are compared with those counted here with plain pandas from the run's CSV files
(not through the app's code); a territory is opened from the Territories page and its clients filtered; a CSV is
downloaded and compared row by row; no request leaves 127.0.0.1 (Streamlit serves its own and Altair's assets); a
screenshot of every page is saved under the test's tmp dir.
"""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from playwright.sync_api import Page, sync_playwright

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.app_server import (
    PAGE_PATHS,
    app_env,
    full_screenshot,
    run_app,
    shown_metrics,
    wait_for_metric,
    wait_until_rendered,
)
from crm_territory_tests.support.cli_run import cli_run_env
from crm_territory_tests.support.ui_screenshots import ARGS, CHROMIUM

pytestmark = pytest.mark.integration

# A candidate rules file, so the Rules preview page has the run's preview to show: Southwest's retail clients into
# West x Retail (the worked example's rule), ahead of the seed's catch-all.
CANDIDATE = """\
version: 1
territories:
  rules:
    - id: southwest-retail-into-west
      priority: 50
      when: {region: {eq: Southwest}, segment: {eq: Retail}}
      assign: {region: West, segment: Retail}
    - id: by-region-and-segment
      priority: 1000
      when: {region: {not_null: true}, segment: {not_null: true}}
      assign: client
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A data folder after a real run of the sample book (the mock CRM API's default 2,000 clients and the drops)."""
    import shutil

    root = tmp_path_factory.mktemp("app_browser")
    data_dir = root / "data"
    for folder in ("landing", "reference", "rules", "matching", "sources"):
        shutil.copytree(REPO_ROOT / "data" / folder, data_dir / folder)
    (data_dir / "rules" / "candidate").mkdir()
    (data_dir / "rules" / "candidate" / "territory_rules.yaml").write_text(CANDIDATE)
    env = cli_run_env(
        data_dir,
        root / "dagster_home",
        drop=("CRM_API_TOKEN", "CRM_API_URL", "CRM_STORAGE", "DAGSTER_HOME"),
        drop_prefixes=("MOCK_CRM_", "SNOWFLAKE_"),
    )
    run = subprocess.run(
        [sys.executable, "-m", "crm_territory.cli", "run", "--start-mock-api"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode in (0, 1) and "SUCCESS" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    return data_dir


def csv(data_dir: Path, layer: str, table: str) -> pd.DataFrame:
    """A published table as plain pandas reads it (text kept as text)."""
    return pd.read_csv(data_dir / layer / f"{table}.csv", dtype={"client_id": str, "source_record_id": str}, keep_default_na=True)


def usd(value: float) -> str:
    return f"${value / 1e9:,.1f}B" if abs(value) >= 1e9 else f"${value / 1e6:,.1f}M"


def open_page(page: Page, url: str, name: str, shots: Path) -> dict[str, str]:
    page.goto(url + PAGE_PATHS[name])
    wait_until_rendered(page)
    assert page.locator('[data-testid="stException"]').count() == 0, name
    full_screenshot(page, shots / f"{name}.png")
    return shown_metrics(page)


def test_every_page_shows_the_runs_figures_in_a_real_browser(published, tmp_path):
    data = published
    clients = csv(data, "core", "client_dim")
    fact = csv(data, "core", "assignments_fact")
    territories = csv(data, "core", "territory_dim")
    advisors = csv(data, "core", "advisor_dim")
    primary = fact[fact["assignment_type"] == "PRIMARY"]
    active_primary = primary[primary["is_current"]]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    outside: list[str] = []

    with run_app(app_env(data), tmp_path / "app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()

        def note(request) -> None:
            host = urlparse(request.url).hostname
            if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host != "127.0.0.1":
                outside.append(request.url)

        page.on("request", note)

        # Overview
        shown = open_page(page, url, "overview", shots)
        assert shown["Clients"] == f"{len(clients):,}" == "2,187"
        assert shown["Active clients"] == f"{int(clients['is_active'].sum()):,}"
        assert shown["AUM"] == usd(clients["aum_usd"].sum())
        assert shown["Territories"] == str((territories["territory_id"] != "UNASSIGNED").sum())
        assert shown["Active advisors"] == str(int(advisors["active"].sum()))
        assert shown["New clients"] == f"{len(clients):,}"  # the first run: every client is new

        # Territories, then one opened from there (drill-down), filtered, and its clients downloaded
        shown = open_page(page, url, "territories", shots)
        per_territory = primary["territory_id"].value_counts()
        assert shown["UNASSIGNED clients"] == f"{per_territory.get('UNASSIGNED', 0):,}"
        assert per_territory[shown["Largest territory"]] == per_territory.max()
        assert shown["Secondary rows"] == str(int((fact["assignment_type"] == "SECONDARY").sum()))
        territory_id = str(per_territory.index[1])  # not the one the list starts with: chosen, then opened
        select = page.get_by_role("combobox", name="Territory")
        select.click()
        select.fill(territory_id)  # the select box filters its options as one types
        page.get_by_role("option", name=territory_id, exact=True).click()
        page.get_by_role("button", name="Open territory page").click()
        page.wait_for_url(re.compile(r".*/territory\?territory="))
        wait_until_rendered(page)
        assert page.url.endswith(f"territory={territory_id}")
        page.get_by_role("heading", name=f"Territory {territory_id}").wait_for(timeout=30_000)
        wait_until_rendered(page)
        full_screenshot(page, shots / "territory.png")
        rows = fact[fact["territory_id"] == territory_id].merge(clients, on="client_key", suffixes=("", "_client"))
        assert shown_metrics(page)["Clients shown"] == f"{len(rows):,}"
        word = rows["client_name"].str.split().str[0].value_counts().index[0]  # the commonest first word there
        wanted = rows[
            rows["client_name"].str.contains(word, case=False, regex=False)
            | rows["client_key"].str.contains(word, case=False, regex=False)
            | rows["parent_org"].fillna("").str.contains(word, case=False, regex=False)
            | rows["primary_advisor_email"].fillna("").str.contains(word, case=False, regex=False)
        ]
        assert 0 < len(wanted) < len(rows)
        search = page.get_by_label("Search clients (name, key, parent, advisor)")
        search.fill(word)
        search.press("Enter")
        wait_for_metric(page, "Clients shown", f"{len(wanted):,}")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download these clients (CSV)").click()
        got = pd.read_csv(download.value.path())
        assert sorted(got["client_key"]) == sorted(wanted["client_key"])
        assert len(got) == len(wanted)
        by_key = got.set_index(["client_key", "Assignment"])
        expected = wanted.set_index(["client_key", "assignment_type"])
        assert by_key.loc[expected.index, "Client"].tolist() == expected["client_name"].tolist()
        assert by_key.loc[expected.index, "Advisor"].fillna("").tolist() == expected["primary_advisor_email"].fillna("").tolist()
        full_screenshot(page, shots / "territory-filtered.png")

        # Advisors: load against capacity
        shown = open_page(page, url, "advisors", shots)
        load = active_primary["primary_advisor_email"].value_counts()
        capacity = advisors.set_index("advisor_email")["capacity"]
        emails = load.index.union(capacity.index)
        over = (load.reindex(emails, fill_value=0) > capacity.reindex(emails, fill_value=0)).sum()
        assert shown["Over capacity"] == str(int(over))
        assert shown["Active advisors"] == str(int(advisors["active"].sum()))

        # Account families
        shown = open_page(page, url, "families", shots)
        members = clients[clients["parent_org"].notna()]
        spans = (
            primary.merge(members[["client_key", "parent_org"]], on="client_key").groupby("parent_org")["territory_id"].nunique()
        )
        assert shown["Families"] == f"{members['parent_org'].nunique():,}"
        assert shown["Split across territories"] == f"{int((spans > 1).sum()):,}"
        assert shown["Clients in families"] == f"{len(members):,}"

        # Rules preview: the run's own preview of the candidate
        shown = open_page(page, url, "rules_preview", shots)
        changes = csv(data, "core", "assignments_preview")
        assert len(changes) > 0
        assert shown["Clients changing"] == f"{len(changes):,}"
        assert shown["Changing territory"] == f"{int(changes['change'].str.contains('territory').sum()):,}"
        assert page.get_by_text("the preview the last run published").count() == 1

        # History: today, every active client is where the fact places it; a client found by its name
        shown = open_page(page, url, "history", shots)
        assert shown["Active clients placed then"] == f"{len(active_primary):,}"
        names = clients["client_name"].str.lower()
        # a client no other client's name contains, so the search finds it alone
        first = next(i for i, name in enumerate(names) if int(names.str.contains(name, regex=False).sum()) == 1)
        client = clients.iloc[first]
        search = page.get_by_label("Find a client (name or key)")
        search.fill(client["client_name"])
        search.press("Enter")
        page.get_by_role("heading", name=f"Who owned {client['client_key']} on").wait_for(timeout=30_000)
        wait_until_rendered(page)
        owner_table = page.get_by_test_id("stTable").first.inner_text()
        assert primary.set_index("client_key").loc[client["client_key"], "territory_id"] in owner_table
        full_screenshot(page, shots / "history.png")

        # Data quality
        shown = open_page(page, url, "quality", shots)
        quarantined = csv(data, "quarantine", "quarantined_clients")
        matches = csv(data, "core", "client_matches")
        manifest = csv(data, "raw", "ingest_manifest")
        spellings = clients["data_issues"].dropna().str.extractall(r"unknown (region|segment) '([^']*)'").drop_duplicates()
        assert shown["Quarantined rows"] == f"{len(quarantined):,}"
        assert shown["Possible duplicates"] == f"{int((matches['decision'] == 'possible').sum()):,}"
        assert shown["Unknown spellings"] == str(len(spellings))
        assert shown["Rejected or deferred files"] == str(int(manifest["status"].isin(["rejected", "deferred"]).sum()))
        browser.close()

    assert outside == [], f"requests left 127.0.0.1: {outside[:5]}"
    assert sorted(p.stem for p in shots.glob("*.png")) == sorted([*PAGE_PATHS, "territory-filtered"])
