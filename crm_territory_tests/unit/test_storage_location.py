"""Where a table was stored, as materializations record it, and how the guards match it to where a run writes."""

import dagster as dg

from crm_territory.storage.csv_set import CsvTableSet
from crm_territory.storage.snowflake import warehouse_location
from crm_territory.storage.table_store import STORAGE_LOCATION
from crm_territory.wiring.guards import stored_at


def test_a_csv_location_is_the_folders_resolved_path(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    assert CsvTableSet(folder).location == f"csv:{folder.resolve()}"
    assert CsvTableSet(tmp_path / "link").location == CsvTableSet(folder).location  # two names, one folder
    assert CsvTableSet(tmp_path / "other").location != CsvTableSet(folder).location


def test_a_snowflake_location_is_account_database_and_schema_case_insensitively():
    assert warehouse_location("Acme-EU", "crm_territory", "core") == "snowflake:acme-eu/CRM_TERRITORY.CORE"
    assert warehouse_location("acme-eu", "CRM_TERRITORY", "CORE") == warehouse_location("ACME-EU", "crm_territory", "Core")
    assert warehouse_location("acme-eu", "CRM_TERRITORY", "CORE") != warehouse_location("acme-eu", "CRM_TEST", "CORE")
    assert warehouse_location("acme-eu", "CRM_TERRITORY", "CORE") != warehouse_location("acme-us", "CRM_TERRITORY", "CORE")


def test_a_recorded_location_matches_only_itself(tmp_path):
    here = CsvTableSet(tmp_path / "data").location
    assert stored_at({STORAGE_LOCATION: dg.MetadataValue.text(here)}, here)
    assert not stored_at({STORAGE_LOCATION: dg.MetadataValue.text(CsvTableSet(tmp_path / "b").location)}, here)
    # the recorded location wins over the file path recorded beside it
    assert not stored_at(
        {
            STORAGE_LOCATION: dg.MetadataValue.text("csv:/elsewhere"),
            "path": dg.MetadataValue.path(str(tmp_path / "data" / "core" / "territory_dim.csv")),
        },
        here,
    )
    assert not stored_at({}, here)  # nothing says where: not here


def test_materializations_from_before_the_location_was_recorded_are_placed_by_what_they_did_record(tmp_path):
    here = CsvTableSet(tmp_path / "data").location
    assert stored_at({"path": dg.MetadataValue.path(str(tmp_path / "data" / "core" / "territory_dim.csv"))}, here)
    assert not stored_at({"path": dg.MetadataValue.path(str(tmp_path / "other" / "core" / "territory_dim.csv"))}, here)
    # Snowflake's named DATABASE.SCHEMA.TABLE, without the account
    warehouse = warehouse_location("acme-eu", "CRM_TERRITORY", "CORE")
    assert stored_at({"table": dg.MetadataValue.text("CRM_TERRITORY.CORE.TERRITORY_DIM")}, warehouse)
    assert not stored_at({"table": dg.MetadataValue.text("CRM_TEST.CORE.TERRITORY_DIM")}, warehouse)
    assert not stored_at({"table": dg.MetadataValue.text("CRM_TERRITORY.CORE.TERRITORY_DIM")}, here)
