"""Shared fixtures: a temporary data folder seeded with the committed inputs, and the seed sample."""

import shutil
from pathlib import Path

import pytest

from crm_territory.logic.reference.reference_data import load_reference_data
from crm_territory_tests.support import REPO_ROOT


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
    from crm_territory.logic.rules.loader import load_rules

    return load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml")


@pytest.fixture(scope="module")
def mock_api(request):
    """The mock CRM API over real HTTP, one per test module; a module sets MOCK_API_BOOK to size the book."""
    from crm_territory_tests.support.mock_api_server import run_mock_api

    with run_mock_api(**getattr(request.module, "MOCK_API_BOOK", {"clients": 300})) as url:
        yield url


@pytest.fixture
def pipeline_env(monkeypatch, data_dir, mock_api):
    """The environment a run reads: the temporary data folder and the mock API with its token."""
    from crm_territory.settings import Settings
    from crm_territory_tests.support.mock_api_server import TEST_TOKEN

    monkeypatch.setenv("CRM_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_API_URL", mock_api)
    return Settings.from_env()


@pytest.fixture
def capture():
    """The attacker's server (issue 10, finding 3): records each request's path and Authorization header."""
    from crm_territory_tests.support.capture_server import run_capture_server

    with run_capture_server() as server:
        yield server
