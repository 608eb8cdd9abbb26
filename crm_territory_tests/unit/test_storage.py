"""CSV table storage: typed round trips and atomic writes."""

from pathlib import Path

import pandas as pd
import pyarrow.csv as pa_csv
import pytest

from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.matching.client_dim import client_dim_from_records, client_records
from crm_territory.logic.matching.decisions import parse_decisions
from crm_territory.logic.matching.resolve import resolve
from crm_territory.logic.placement.pipeline import build_star
from crm_territory.logic.rules.loader import load_rules
from crm_territory.logic.rules.table import rules_table
from crm_territory.schemas import TABLES
from crm_territory.storage import csv_tables
from crm_territory.storage.csv_tables import CsvTables, TableNotFoundError
from crm_territory_tests.support import REPO_ROOT, utc

TRICKY = (
    "client_id,client_name,region,segment,parent_org,advisor_email,status\n"
    '1,"Atlas, ""Capital""",NE,INST,"Atlas\nHoldings",A@X.COM,active\n'
    "2,Zoë Ünïcode,NA,RET,,,inactive\n"
    ",missing id,NE,RET,,,\n"
    # the probe's: formulas a spreadsheet would run, and one already written with an apostrophe
    '3,"=HYPERLINK(""http://x"",""y"")",NE,RET,+cmd|' + "' /C calc'!A0,,active\n"
    "4,@SUM(A1),NE,RET,'=already defused,,active\n"
)


def tables(reference):
    ingest = assemble_raw_clients(
        [(LandingFile("t.csv", 1, utc("2026-01-01")), read_drop("t.csv", TRICKY.encode()))], None, utc("2026-01-02")
    )
    records = client_records(ingest.raw_clients, reference)
    # a must-link joins the two records, so client_matches and client_dim hold a merged client too
    decisions = parse_decisions(
        pd.DataFrame({"record_a": ["csv_drop:1"], "record_b": ["csv_drop:2"], "decision": ["must_link"], "note": [None]}), "test"
    )
    resolution = resolve(records, decisions, None, None, utc("2026-01-02"))
    clients = client_dim_from_records(records, resolution.xref)
    rules = load_rules(
        REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml"
    )  # every feature: SECONDARY rows, overlays
    star = build_star(clients, rules, reference, issued_at=utc("2026-01-02"))
    return {
        "raw_clients": ingest.raw_clients,
        "quarantined_clients": ingest.quarantined,
        "ingest_manifest": ingest.manifest,
        "client_xref": resolution.xref,
        "client_matches": resolution.matches,
        "client_key_retirements": resolution.retirements,
        "client_dim": clients,
        "territory_rules": rules_table(rules),
        "territory_dim": star.territory_dim,
        "assignments_fact": star.assignments.fact,
    }


def test_every_table_round_trips_with_its_model_dtypes(tmp_path, reference):
    store = CsvTables(tmp_path)
    for name, frame in tables(reference).items():
        path = store.write(name, frame)
        assert path == tmp_path / TABLES[name].layer / f"{name}.csv"
        back = store.read(name)
        pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=True)
        TABLES[name].model.validate(back)


def test_core_tables_live_where_the_seed_put_them(tmp_path):
    store = CsvTables(tmp_path)
    assert store.path_for("client_dim") == tmp_path / "core" / "client_dim.csv"
    assert store.path_for("quarantined_clients") == tmp_path / "quarantine" / "quarantined_clients.csv"
    assert store.path_for("raw_clients") == tmp_path / "raw" / "raw_clients.csv"


def test_a_failed_write_leaves_the_previous_table_and_no_temp_file(tmp_path, reference, monkeypatch):
    store = CsvTables(tmp_path)
    good = tables(reference)["client_dim"]
    store.write("client_dim", good)
    previous_bytes = store.path_for("client_dim").read_bytes()

    real_write_csv = pa_csv.write_csv
    targets: list[str] = []

    def write_half_then_fail(data, output_file, *args, **kwargs):
        """Write the first part of the real output to the path the writer was given, then die (disk full, kill)."""
        real_write_csv(data, output_file, *args, **kwargs)
        path = Path(output_file)
        path.write_bytes(path.read_bytes()[:40])
        targets.append(str(path))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv_tables.pa_csv, "write_csv", write_half_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        store.write("client_dim", good.assign(client_name="Renamed"))

    assert len(targets) == 1  # the writer was reached: the failure happened mid-write, not before it
    assert store.path_for("client_dim").read_bytes() == previous_bytes
    pd.testing.assert_frame_equal(store.read("client_dim"), good)
    assert [p.name for p in (tmp_path / "core").iterdir()] == ["client_dim.csv"]

    # the store still works once the cause is gone
    monkeypatch.setattr(csv_tables.pa_csv, "write_csv", real_write_csv)
    store.write("client_dim", good.assign(client_name="Renamed"))
    assert set(store.read("client_dim")["client_name"]) == {"Renamed"}
    assert [p.name for p in (tmp_path / "core").iterdir()] == ["client_dim.csv"]


def test_missing_columns_are_refused_before_writing(tmp_path, reference):
    with pytest.raises(ValueError, match=r"columns \['data_issues'\] are missing"):
        CsvTables(tmp_path).write("client_dim", tables(reference)["client_dim"].drop(columns="data_issues"))


def test_reading_a_table_never_written_says_so(tmp_path):
    with pytest.raises(TableNotFoundError, match="client_dim has not been written yet"):
        CsvTables(tmp_path).read("client_dim")
    assert CsvTables(tmp_path).read_if_exists("client_dim") is None


def test_formulas_are_defused_in_the_files_people_open_and_read_back_unchanged(tmp_path, reference):
    """OWASP's CSV-injection rule: =, +, -, @ (or a tab/CR before one) would run in Excel; the file holds them as text."""
    store = CsvTables(tmp_path)
    clients = tables(reference)["client_dim"]
    path = store.write("client_dim", clients)
    cells = pa_csv.read_csv(path).to_pandas()
    names = set(cells["client_name"].dropna())
    assert '\'=HYPERLINK("http://x","y")' in names and "'@SUM(A1)" in names
    assert not any(str(value).startswith(("=", "+", "-", "@", "\t")) for value in cells.astype(str).to_numpy().ravel())
    assert "''=already defused" in set(cells["parent_org"].dropna())  # one more apostrophe, so reading is exact
    pd.testing.assert_frame_equal(store.read("client_dim"), clients.reset_index(drop=True))
