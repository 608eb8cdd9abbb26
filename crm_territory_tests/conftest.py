"""Shared fixtures: a temporary data folder seeded with the committed inputs, and the seed sample."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_territory.logic.reference import load_reference_data

REPO_ROOT = Path(__file__).resolve().parents[1]

# The seed README's sample, verbatim: our contract.
SEED_SAMPLE = (
    "client_id,client_name,region,segment,parent_org,advisor_email\n"
    "1,Atlas Capital Partners,Northeast,Institutional,Atlas Holdings,advisor1@example.com\n"
    "2,Beacon Wealth Management,Northeast,Retail,Beacon Group,advisor2@example.com\n"
    "3,Crescent Advisory Group,Midwest,Institutional,Crescent Holdings,advisor3@example.com\n"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A CRM_DATA_DIR holding copies of the committed landing drop, reference data, rules and match decisions."""
    root = tmp_path / "data"
    shutil.copytree(REPO_ROOT / "data" / "landing", root / "landing")
    shutil.copytree(REPO_ROOT / "data" / "reference", root / "reference")
    shutil.copytree(REPO_ROOT / "data" / "rules", root / "rules")
    shutil.copytree(REPO_ROOT / "data" / "matching", root / "matching")
    return root


@pytest.fixture(scope="session")
def reference():
    return load_reference_data(REPO_ROOT / "data" / "reference")


@pytest.fixture(scope="session")
def seed_rules():
    """The committed rules file: the seed's rule, nothing else."""
    from crm_territory.logic.rules import load_rules

    return load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def mock_api(request):
    """The mock CRM API over real HTTP, one per test module; a module sets MOCK_API_BOOK to size the book."""
    from crm_territory_tests.mock_api_server import run_mock_api

    with run_mock_api(**getattr(request.module, "MOCK_API_BOOK", {"clients": 300})) as url:
        yield url


@pytest.fixture
def pipeline_env(monkeypatch, data_dir, mock_api):
    """The environment a run reads: the temporary data folder and the mock API with its token."""
    from crm_territory.settings import Settings
    from crm_territory_tests.mock_api_server import TEST_TOKEN

    monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_API_URL", mock_api)
    return Settings.from_env()


# Runs in tests log at WARNING: the assertions read events, not the console.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def error_text(event: dg.DagsterEvent) -> str:
    """A step failure's message and the messages of its causes, joined."""
    error, parts = event.step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return " | ".join(parts)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The asset keys a run materialized."""
    return {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
