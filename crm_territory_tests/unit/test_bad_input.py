"""Bad input (issue 11): each case gets a clear message and nothing is lost.

Every case is read beside a good seed drop and a good layout file, through the same path a run takes
(``read_landing_file`` -> ``assemble_raw_clients``), and counts rows in, loaded and quarantined per file:
rows in = loaded + quarantined, and the other files still load.
"""

import gzip
import io
import zipfile

import pandas as pd
import pytest

from crm_territory.logic.ingest.layouts import load_layouts
from crm_territory.logic.ingest.mapping import read_landing_file
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.integrity import unbalanced_batches
from crm_territory.logic.matching.client_dim import build_client_dim, client_records
from crm_territory_tests.support import SEED_SAMPLE, utc

NOW = utc("2026-11-27")
HEADER = "client_id,client_name,region,segment,parent_org,advisor_email\n"
BOOK = (
    b"version: 1\nsource_system: book\nfiles: {pattern: 'book*.csv'}\nid: {column: Id}\n"
    b"fields:\n  client_name: Name\n  segment: {column: Kind, map: {inst: Institutional, ret: Retail}}\n"
)
GOOD_BOOK = b"Id,Name,Kind\nB1,Book One,inst\nB2,Book Two,ret\n"


def ingest(files: dict[str, bytes], layouts: dict[str, bytes] | None = None):
    """The files beside a good seed drop and a good layout file, read as a run reads them."""
    all_files = {"clients.csv": SEED_SAMPLE.encode(), "book_good.csv": GOOD_BOOK, **files}
    parsed = load_layouts(sorted({"book.yaml": BOOK, **(layouts or {})}.items()))
    drops = [
        (LandingFile(name, len(data), utc("2026-11-26")), read_landing_file(name, data, parsed))
        for name, data in all_files.items()
    ]
    result = assemble_raw_clients(drops, None, NOW)
    assert unbalanced_batches(result.manifest, result.raw_clients, result.quarantined).empty  # rows in = loaded + quarantined
    manifest = result.manifest.set_index("batch")
    # the other files still load, whole
    assert manifest.loc["clients.csv", ["status", "rows_read", "rows_loaded"]].tolist() == ["loaded", 3, 3]
    assert manifest.loc["book_good.csv", ["status", "rows_read", "rows_loaded"]].tolist() == ["loaded", 2, 2]
    return result, manifest, parsed


def counts(manifest: pd.DataFrame, batch: str) -> tuple[str, int, int, int]:
    row = manifest.loc[batch]
    return row["status"], int(row["rows_read"]), int(row["rows_loaded"]), int(row["rows_quarantined"])


def test_duplicated_header_names_reject_the_file_naming_them():
    _, manifest, _ = ingest(
        {"dup.csv": (HEADER.strip() + ",Client_ID\n1,A,,,,,1\n").encode(), "book_dup.csv": b"Id,Name,name,Kind\n1,A,B,inst\n"}
    )
    assert counts(manifest, "dup.csv") == ("rejected", 0, 0, 0)
    assert "client_id more than once" in manifest.loc["dup.csv", "message"]
    assert counts(manifest, "book_dup.csv") == ("rejected", 0, 0, 0)
    assert "column(s) 'Name', 'name' more than once" in manifest.loc["book_dup.csv", "message"]


def test_a_header_only_file_loads_nothing_and_says_so():
    _, manifest, _ = ingest({"empty.csv": HEADER.encode(), "book_empty.csv": b"Id,Name,Kind\r\n"})
    assert counts(manifest, "empty.csv") == ("loaded", 0, 0, 0)
    assert counts(manifest, "book_empty.csv") == ("loaded", 0, 0, 0)
    assert "header only, no data rows" in manifest.loc["book_empty.csv", "message"]


def test_embedded_newlines_in_quoted_fields_stay_in_their_row():
    result, manifest, _ = ingest(
        {
            "multi.csv": (HEADER + '1,"Atlas\nCapital",Northeast,Retail,,\n2,Beacon,West,Retail,,\n').encode(),
            "book_multi.csv": b'Id,Name,Kind\nM1,"Multi\r\nLine Co",inst\nM2,"Broken,inst\nM3,Fine,ret\n',
        }
    )
    assert counts(manifest, "multi.csv") == ("loaded", 2, 2, 0)
    raw = result.raw_clients.set_index(["source_file", "client_id"])
    assert raw.loc[("multi.csv", "1"), "client_name"] == "Atlas\nCapital"
    # an unbalanced quote swallows the lines after it into one malformed row: quarantined with its text, counted
    status, read, loaded, quarantined = counts(manifest, "book_multi.csv")
    assert (status, read) == ("loaded", read) and read == loaded + quarantined and loaded >= 1
    assert raw.loc[("book_multi.csv", "M1"), "client_name"] == "Multi\r\nLine Co"
    assert "span lines" in manifest.loc["book_multi.csv", "message"]


def test_ids_are_text_never_numbers():
    ids = ["007", "7", "7.0", "1e5"]
    result, manifest, _ = ingest(
        {
            "ids.csv": (HEADER + "".join(f"{i},Firm {i},West,Retail,,\n" for i in ids)).encode(),
            "book_ids.csv": ("Id,Name,Kind\n" + "".join(f"{i},Firm {i},inst\n" for i in ids)).encode(),
        }
    )
    for batch in ["ids.csv", "book_ids.csv"]:
        assert counts(manifest, batch) == ("loaded", 4, 4, 0)
        assert result.raw_clients.loc[result.raw_clients["source_file"] == batch, "client_id"].tolist() == ids


def test_a_file_claimed_by_two_layouts_is_rejected_naming_both_and_the_rest_loads():
    other = BOOK.replace(b"source_system: book", b"source_system: other").replace(b"book*.csv", b"*_x.csv")
    _, manifest, _ = ingest({"book_x.csv": GOOD_BOOK}, {"other.yaml": other})
    assert counts(manifest, "book_x.csv") == ("rejected", 0, 0, 0)
    assert "claimed by two layouts, data/sources/book.yaml and data/sources/other.yaml" in manifest.loc["book_x.csv", "message"]


def test_a_layout_claiming_nothing_is_reported_not_an_error():
    nothing = BOOK.replace(b"source_system: book", b"source_system: later").replace(b"book*.csv", b"hubspot_*.csv")
    _, manifest, parsed = ingest({}, {"later.yaml": nothing})
    assert list(manifest.index) == ["book_good.csv", "clients.csv"]  # nothing rejected
    assert parsed.unclaiming(list(manifest.index)) == [
        "data/sources/later.yaml: its files (pattern 'hubspot_*.csv') match no landing file; nothing read for it"
    ]


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "said"),
    [(gzip.compress(SEED_SAMPLE.encode()), "gzip-compressed"), (_xlsx(), "zip archive (an Excel .xlsx workbook is one)")],
    ids=["gzip", "xlsx"],
)
def test_a_gzip_or_xlsx_file_named_csv_is_rejected_saying_what_it_is(content, said):
    _, manifest, _ = ingest({"export.csv": content, "book_export.csv": content})
    for batch in ["export.csv", "book_export.csv"]:
        assert counts(manifest, batch) == ("rejected", 0, 0, 0)
        assert said in manifest.loc[batch, "message"]


def test_a_value_a_map_does_not_cover_is_left_unknown_or_quarantined_when_required():
    name_map = (
        b"version: 1\nsource_system: mapped\nfiles: {pattern: 'mapped*.csv'}\nid: {column: Id}\n"
        b"fields:\n  client_name: {column: Name, map: {acme: Acme Corporation}}\n"
    )
    result, manifest, _ = ingest(
        {
            "book_new.csv": b"Id,Name,Kind\nN1,New One,inst\nN2,New Two,hedge fund\n",
            "mapped.csv": b"Id,Name\n1,ACME\n2,Unknown Co\n",
        },
        {"mapped.yaml": name_map},
    )
    assert counts(manifest, "book_new.csv") == ("loaded", 2, 2, 0)
    raw = result.raw_clients.set_index(["source_file", "client_id"])
    assert raw.loc[("book_new.csv", "N2"), "segment"] is None  # not guessed
    assert (
        "fields.segment.map does not cover 1 value(s) of column 'Kind': 'hedge fund' (1)"
        in manifest.loc["book_new.csv", "message"]
    )
    # the name is required: a name the map does not cover is quarantined, naming the source's column
    assert counts(manifest, "mapped.csv") == ("loaded", 2, 1, 1)
    assert raw.loc[("mapped.csv", "1"), "client_name"] == "Acme Corporation"
    reason = result.quarantined.loc[result.quarantined["source_file"] == "mapped.csv", "reason"].iloc[0]
    assert reason.startswith("the name in column 'Name' is not covered by fields.client_name.map")


def test_a_column_empty_in_every_row_loads_and_reaches_client_dim(reference):
    # the crash found while testing: a drop whose segment column is blank throughout (IndexError in canonicalise)
    blank = (HEADER + "1,Atlas Capital,Northeast,,,\n2,Beacon,Northeast,,,\n").encode()
    result, manifest, _ = ingest({"blank.csv": blank, "book_blank.csv": b"Id,Name,Kind\nE1,Empty Kind,\nE2,Also Empty,\n"})
    assert counts(manifest, "blank.csv") == ("loaded", 2, 2, 0)
    assert counts(manifest, "book_blank.csv") == ("loaded", 2, 2, 0)
    only_blank = result.raw_clients[result.raw_clients["source_file"].isin(["blank.csv", "book_blank.csv"])]
    records = client_records(only_blank, reference)
    assert records["segment"].isna().all() and len(records) == 4
    dim = build_client_dim(only_blank, reference)
    assert len(dim) == 4 and dim["segment"].isna().all()
