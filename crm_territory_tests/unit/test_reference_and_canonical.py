"""Canonicalisation through the reference alias tables, and validation of those tables."""

import pandas as pd
import pytest

from crm_territory.logic.reference.canonical import canonicalise, normalise_emails
from crm_territory.logic.reference.reference_data import ReferenceDataError, load_reference_data
from crm_territory_tests.support import REPO_ROOT


def test_messy_spellings_map_to_canonical_regions_and_segments(reference):
    regions = pd.Series(
        ["Northeast", "north east", "NE", "NORTHEAST", " Northeast ", "N.E.", "south-west", "MW", None, "", "Pacific Rim"]
    )
    assert canonicalise(regions, reference.region_aliases).tolist() == [
        "Northeast",
        "Northeast",
        "Northeast",
        "Northeast",
        "Northeast",
        "Northeast",
        "Southwest",
        "Midwest",
        None,
        None,
        None,
    ]
    segments = pd.Series(["INST", "Inst.", "institutional", "private-wealth", "HNW", "RET", "Other"])
    assert canonicalise(segments, reference.segment_aliases).tolist() == [
        "Institutional",
        "Institutional",
        "Institutional",
        "Private Wealth",
        "Private Wealth",
        "Retail",
        None,
    ]


def test_every_spelling_the_mock_crm_sends_is_known(reference):
    from mock_api.generator import generate_clients

    book = generate_clients(5000, seed=7)
    regions = canonicalise(book["region"], reference.region_aliases)
    unknown = set(book.loc[regions.isna(), "region"].dropna()) - {"Pacific Rim", ""}
    assert not unknown, f"spellings missing from region_aliases.csv: {unknown}"
    segments = canonicalise(book["segment"], reference.segment_aliases)
    assert set(book.loc[segments.isna(), "segment"].dropna()) <= {"Other"}


def test_emails_are_lower_cased_and_invalid_ones_flagged():
    emails, invalid = normalise_emails(pd.Series(["Jane.Doe@Northwind-Advisors.com ", "jane.doe(at)x.com", "jane@", None, ""]))
    assert emails.tolist() == ["jane.doe@northwind-advisors.com", None, None, None, None]
    assert invalid.tolist() == [False, True, True, False, False]


def _write_reference(
    folder, regions: str, segments: str = "alias,segment\nRetail,Retail\n", roles: str = "segment,owner_role\nRetail,RA\n"
):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "region_aliases.csv").write_text(regions)
    (folder / "segment_aliases.csv").write_text(segments)
    (folder / "segments.csv").write_text(roles)
    return folder


def test_an_alias_meaning_two_regions_is_an_error_naming_file_and_lines(tmp_path):
    folder = _write_reference(tmp_path / "ref", "alias,region\nNE,Northeast\nn.e.,Northwest\n")
    with pytest.raises(ReferenceDataError, match=r"region_aliases.csv: alias 'ne' maps to more than one region .*line 2.*line 3"):
        load_reference_data(folder)


def test_a_segment_without_owner_role_is_an_error(tmp_path):
    folder = _write_reference(tmp_path / "ref", "alias,region\nNE,Northeast\n", roles="segment,owner_role\nOther,X\n")
    with pytest.raises(ReferenceDataError, match=r"no owner_role for segment\(s\) \['Retail'\]"):
        load_reference_data(folder)


def test_missing_reference_file_is_named(tmp_path):
    with pytest.raises(ReferenceDataError, match="region_aliases.csv: reference file is missing"):
        load_reference_data(tmp_path)


def test_committed_reference_data_loads():
    ref = load_reference_data(REPO_ROOT / "data" / "reference")
    assert ref.regions == ["Midwest", "Northeast", "Northwest", "Southeast", "Southwest", "West"]
    assert set(ref.owner_roles) == set(ref.segments)
