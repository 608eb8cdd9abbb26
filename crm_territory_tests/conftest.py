"""Shared fixtures: a temporary data folder seeded with the committed inputs, and the seed sample."""

import shutil
from pathlib import Path

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
    """A CRM_DATA_DIR holding copies of the committed landing drop and reference data."""
    root = tmp_path / "data"
    shutil.copytree(REPO_ROOT / "data" / "landing", root / "landing")
    shutil.copytree(REPO_ROOT / "data" / "reference", root / "reference")
    return root


@pytest.fixture(scope="session")
def reference():
    return load_reference_data(REPO_ROOT / "data" / "reference")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")
