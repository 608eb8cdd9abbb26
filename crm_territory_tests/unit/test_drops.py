"""Reading drops: each bad-file case is rejected with a message naming the file and the problem."""

import pytest

from crm_territory.logic.ingest.drops import read_drop
from crm_territory_tests.support import REPO_ROOT, SEED_SAMPLE

HEADER = "client_id,client_name,region,segment,parent_org,advisor_email\n"


def test_seed_sample_reads_cleanly():
    read = read_drop("clients.csv", SEED_SAMPLE.encode())
    assert read.error is None
    assert read.rows["client_id"].tolist() == ["1", "2", "3"]
    assert read.rows["source_row"].tolist() == [1, 2, 3]
    assert read.malformed.empty


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"PK\x03\x04\x00\x00binary", "binary: it contains a NUL byte at offset 4 (line 1)"),
        (HEADER.encode("utf-16"), "UTF-16"),
        ((HEADER + "1,Caf\xe9 Advisors,Northeast,Retail,,\n").encode("latin-1"), "not UTF-8 text: byte 0xe9"),
        (b"client_id,client_name\n1,Atlas\n", "missing region, segment, parent_org, advisor_email"),
        ((HEADER.strip() + ",client_id\n").encode(), "client_id more than once"),
        # the probe's: a NUL byte past the first 64 KB was loaded into the core tables
        (
            (HEADER + "1,Atlas Capital,Northeast,Retail,,a@b.com\n" * 2000 + "2,Nul\x00 Co,West,Retail,,\n").encode(),
            "NUL byte at offset",
        ),
        ((HEADER + "1,Atlas Capital,Northeast,Retail,,a@b.com\n").replace("\n", "\r").encode(), "CR only (old Mac line endings)"),
        (HEADER.encode("utf-32"), "UTF-32"),
    ],
    ids=["empty", "blank", "binary", "utf16", "latin1", "wrong-columns", "duplicate-column", "late-nul", "cr-only", "utf32"],
)
def test_bad_files_are_rejected_naming_file_and_reason(content, expected):
    read = read_drop("drop_2026.csv", content)
    assert read.rows is None
    assert read.error.startswith("drop_2026.csv: ")
    assert expected in read.error


def test_foreign_layout_export_is_rejected_listing_what_it_found():
    maven = REPO_ROOT.parent / "shared" / "datasets" / "maven_crm" / "accounts.csv"
    content = maven.read_bytes() if maven.exists() else b"account,sector,year_established\nAcme Corporation,technolgy,1996\n"
    read = read_drop("accounts.csv", content)
    assert "wrong columns" in read.error and "found account, sector" in read.error


def test_latin1_error_names_the_line():
    content = (HEADER + "1,Atlas,Northeast,Retail,,\n2,Caf\xe9,Midwest,Retail,,\n").encode("latin-1")
    assert "(line 3)" in read_drop("x.csv", content).error


def test_malformed_rows_are_kept_aside_with_their_row_number_and_text():
    content = (
        HEADER + "1,Atlas,Northeast,Retail,,a@x.com\n2,Short\n3,Crescent,Midwest,Retail,,,extra,fields\n4,Delta,West,Retail,,\n"
    ).encode()
    read = read_drop("x.csv", content)
    assert read.rows["client_id"].tolist() == ["1", "4"]
    assert read.rows["source_row"].tolist() == [1, 4]
    assert read.malformed["source_row"].tolist() == [2, 3]
    assert read.malformed["text"].tolist()[0] == "2,Short"
    assert "2 fields, expected 6" in read.malformed["reason"].tolist()[0]
    assert read.rows_read == 4


def test_header_is_forgiving_about_case_spaces_bom_and_order_and_values_are_trimmed():
    content = "\ufeffClient_ID , CLIENT_NAME,segment,region,parent_org,advisor_email,status\n 7 ,  Atlas  ,Retail,NE,,,Inactive\n".encode()
    read = read_drop("x.csv", content)
    assert read.error is None
    row = read.rows.iloc[0]
    assert (row["client_id"], row["client_name"], row["region"], row["status"]) == ("7", "Atlas", "NE", "Inactive")
    assert row["parent_org"] is None


def test_unknown_extra_columns_are_ignored_with_a_warning():
    read = read_drop("x.csv", (HEADER.strip() + ",favourite_colour\n1,Atlas,NE,RET,,,blue\n").encode())
    assert read.error is None
    assert "favourite_colour" not in read.rows.columns
    assert any("favourite_colour" in w for w in read.warnings)


def test_quoted_values_with_commas_and_newlines_are_one_row():
    content = (HEADER + '1,"Atlas, Capital ""Partners""",NE,RET,"Atlas\nHoldings",\n2,Beacon,NE,RET,,\n').encode()
    read = read_drop("x.csv", content)
    assert read.rows["client_name"].tolist() == ['Atlas, Capital "Partners"', "Beacon"]
    assert read.rows["source_row"].tolist() == [1, 2]


def test_values_like_na_are_text_not_missing():
    read = read_drop("x.csv", (HEADER + "1,NA Holdings,NA,RET,None,\n").encode())
    assert read.rows.iloc[0]["region"] == "NA" and read.rows.iloc[0]["parent_org"] == "None"


def test_header_only_is_an_empty_drop_with_or_without_a_final_line_break():
    for content in [HEADER.encode(), HEADER.strip().encode()]:
        read = read_drop("x.csv", content)
        assert read.error is None and read.rows_read == 0
        assert any("header only" in w for w in read.warnings)


def test_an_unbalanced_quote_is_flagged_not_silently_swallowed():
    content = (HEADER + '1,"Atlas,NE,RET,,\n2,Beacon,NE,RET,,\n3,Crescent,MW,INST,,\n').encode()
    read = read_drop("x.csv", content)
    # the quote swallows the next lines into one malformed row, kept whole in the quarantine...
    assert read.rows.empty and read.malformed["source_row"].tolist() == [1]
    assert read.malformed["reason"].iloc[0].endswith("it spans 3 lines (an unbalanced quote?)")
    assert "2,Beacon" in read.malformed["text"].iloc[0]
    # ...and the file's warning says that 3 lines made 1 row
    assert any("3 data lines hold 1 rows" in w for w in read.warnings)


def test_a_late_nul_names_its_line():
    data = (HEADER + "1,Atlas Capital,Northeast,Retail,,a@b.com\n" * 2000 + "2,Nul\x00 Co,West,Retail,,\n").encode()
    assert len(data) > 64 * 1024
    assert "(line 2,002)" in read_drop("late.csv", data).error
