"""Stable client keys, survivorship (golden records) and the human decisions file.

Expectations follow the rules in the docstrings of crm_territory.logic.matching.client_keys,
crm_territory.logic.matching.survivorship and crm_territory.logic.matching.decisions.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.matching.client_keys import MERGED, RETIREMENT_COLUMNS, assign_client_keys
from crm_territory.logic.matching.decisions import CANNOT_LINK, MUST_LINK, MatchDecisionsError, parse_decisions, read_decisions
from crm_territory.logic.matching.survivorship import FIELD_RULES, golden_records
from crm_territory_tests.support import utc

T_JAN, T_FEB, T_MAR, T_JUN = utc("2026-01-01"), utc("2026-02-01"), utc("2026-03-01"), utc("2026-06-01")
NOW = utc("2026-11-26T10:00:00")
LATER = utc("2026-11-27T10:00:00")

# =================================================================================================
# Stable client keys
# =================================================================================================


def assign(keys, clusters, ages, previous=None, ever_issued=(), now=NOW):
    """assign_client_keys over plain lists; returns (key per record, issued_at per record, retirements)."""
    out = assign_client_keys(
        pd.Series(keys, dtype=object),
        np.asarray(clusters, dtype=np.int64),
        pd.Series(pd.to_datetime(ages, utc=True)),
        previous,
        set(ever_issued),
        now,
    )
    return list(out.client_key), [pd.Timestamp(t) for t in out.client_key_issued_at], out.retirements


def previous_run(*rows):
    """A previous client_xref: (record_key, client_key, client_key_issued_at) rows."""
    frame = pd.DataFrame(rows, columns=["record_key", "client_key", "client_key_issued_at"])
    frame["client_key_issued_at"] = pd.to_datetime(frame["client_key_issued_at"], utc=True)
    return frame


def test_first_run_key_is_the_record_key_of_the_clusters_earliest_record():
    # cluster 0: crm_api:7 (March) and csv_drop:1 (January): the January record names it, though
    # "crm_api:7" sorts first; cluster 1 has one record
    keys, issued, retired = assign(["crm_api:7", "csv_drop:1", "csv_drop:2"], [0, 0, 1], [T_MAR, T_JAN, T_FEB])
    assert keys == ["csv_drop:1", "csv_drop:1", "csv_drop:2"]
    assert issued == [NOW, NOW, NOW]
    assert retired.empty and list(retired.columns) == RETIREMENT_COLUMNS


def test_equally_old_records_break_the_tie_by_record_key():
    keys, _, _ = assign(["csv_drop:5", "crm_api:9"], [0, 0], [T_JAN, T_JAN])
    assert keys == ["crm_api:9", "crm_api:9"]


def test_a_book_without_duplicates_keeps_every_record_key():
    record_keys = ["crm_api:1", "crm_api:2", "csv_drop:1"]
    keys, _, _ = assign(record_keys, [0, 1, 2], [T_JAN, T_JAN, T_JAN])
    assert keys == record_keys


def test_a_cluster_keeps_its_key_when_a_record_joins_it():
    previous = previous_run(("csv_drop:1", "csv_drop:1", T_FEB), ("csv_drop:2", "csv_drop:1", T_FEB))
    # the newcomer crm_api:3 is older than both: on a first run it would have named the cluster
    keys, issued, retired = assign(
        ["crm_api:3", "csv_drop:1", "csv_drop:2"], [0, 0, 0], [T_JAN, T_MAR, T_MAR], previous, {"csv_drop:1"}
    )
    assert keys == ["csv_drop:1"] * 3
    assert issued == [T_FEB] * 3  # the key's issue time is the original one, not this run's
    assert retired.empty


def test_a_run_with_nothing_changed_changes_no_key():
    previous = previous_run(
        ("crm_api:1", "crm_api:1", T_JAN), ("csv_drop:4", "crm_api:1", T_JAN), ("csv_drop:5", "csv_drop:5", T_FEB)
    )
    keys, issued, retired = assign(
        ["crm_api:1", "csv_drop:4", "csv_drop:5"], [0, 0, 1], [T_JAN, T_FEB, T_FEB], previous, {"crm_api:1", "csv_drop:5"}
    )
    assert keys == ["crm_api:1", "crm_api:1", "csv_drop:5"]
    assert issued == [T_JAN, T_JAN, T_FEB]
    assert retired.empty


def test_a_merge_keeps_the_older_key_and_retires_the_other_into_it():
    # "csv_drop:9" was issued first (January) though it sorts after "crm_api:1" (June)
    previous = previous_run(("csv_drop:9", "csv_drop:9", T_JAN), ("crm_api:1", "crm_api:1", T_JUN))
    keys, issued, retired = assign(["crm_api:1", "csv_drop:9"], [0, 0], [T_JAN, T_JAN], previous, {"csv_drop:9", "crm_api:1"})
    assert keys == ["csv_drop:9", "csv_drop:9"]
    assert issued == [T_JAN, T_JAN]
    assert retired.to_dict("records") == [
        {"retired_client_key": "crm_api:1", "client_key": "csv_drop:9", "retired_at": NOW, "reason": MERGED}
    ]


def test_a_three_way_merge_retires_both_younger_keys_into_the_oldest():
    previous = previous_run(
        ("crm_api:1", "crm_api:1", T_MAR), ("crm_api:2", "crm_api:2", T_JAN), ("crm_api:3", "crm_api:3", T_FEB)
    )
    keys, _, retired = assign(
        ["crm_api:1", "crm_api:2", "crm_api:3"], [0, 0, 0], [T_JAN] * 3, previous, {"crm_api:1", "crm_api:2", "crm_api:3"}
    )
    assert keys == ["crm_api:2"] * 3
    assert sorted(zip(retired["retired_client_key"], retired["client_key"])) == [
        ("crm_api:1", "crm_api:2"),
        ("crm_api:3", "crm_api:2"),
    ]


def test_a_split_keeps_the_key_on_the_larger_part_and_the_other_gets_a_suffixed_new_key():
    # A, B, C were one client keyed by A's record key; now A stands alone and B, C stay together
    previous = previous_run(
        ("csv_drop:1", "csv_drop:1", T_JAN), ("csv_drop:2", "csv_drop:1", T_JAN), ("csv_drop:3", "csv_drop:1", T_JAN)
    )
    keys, issued, retired = assign(
        ["csv_drop:1", "csv_drop:2", "csv_drop:3"], [0, 1, 1], [T_JAN, T_FEB, T_MAR], previous, {"csv_drop:1"}
    )
    assert keys[1] == keys[2] == "csv_drop:1"  # the larger part keeps the key (and its issue time)
    assert issued[1] == issued[2] == T_JAN
    assert keys[0] == "csv_drop:1~2"  # A's own record key was issued before: never reused
    assert issued[0] == NOW
    assert retired.empty  # a split retires nothing


def test_a_split_part_whose_record_key_was_never_issued_gets_it_plain():
    previous = previous_run(
        ("csv_drop:1", "csv_drop:1", T_JAN), ("csv_drop:2", "csv_drop:1", T_JAN), ("csv_drop:3", "csv_drop:1", T_JAN)
    )
    keys, _, _ = assign(["csv_drop:1", "csv_drop:2", "csv_drop:3"], [0, 0, 1], [T_JAN, T_FEB, T_MAR], previous, {"csv_drop:1"})
    assert keys == ["csv_drop:1", "csv_drop:1", "csv_drop:3"]


def test_the_suffix_skips_every_suffix_already_issued():
    previous = previous_run(
        ("csv_drop:1", "csv_drop:7", T_JAN), ("csv_drop:2", "csv_drop:7", T_JAN), ("csv_drop:3", "csv_drop:7", T_JAN)
    )
    ever = {"csv_drop:7", "csv_drop:1", "csv_drop:1~2"}  # both spellings of A's key were issued before
    keys, _, _ = assign(["csv_drop:1", "csv_drop:2", "csv_drop:3"], [0, 1, 1], [T_JAN, T_JAN, T_JAN], previous, ever)
    assert keys == ["csv_drop:1~3", "csv_drop:7", "csv_drop:7"]


def test_a_tied_split_keeps_the_key_on_the_part_with_the_earliest_record():
    # two records of key K split one and one: "ties: the part with the earliest record", the earliest
    # record being the oldest source_modified_at (as for a new cluster's key). csv_drop:2 is older.
    previous = previous_run(("csv_drop:1", "csv_drop:1", T_JAN), ("csv_drop:2", "csv_drop:1", T_JAN))
    keys, _, _ = assign(["csv_drop:1", "csv_drop:2"], [0, 1], [T_MAR, T_JAN], previous, {"csv_drop:1"})
    assert keys[1] == "csv_drop:1"
    assert keys[0] == "csv_drop:1~2"


def test_keys_are_never_reused_across_runs_of_splits_and_merges():
    """Split, merge back, split again: every key handed out for a new cluster is one never issued before."""
    record_keys, ages = ["csv_drop:1", "csv_drop:2", "csv_drop:3"], [T_JAN, T_FEB, T_MAR]
    together, split = [0, 0, 0], [0, 1, 1]
    previous, ever, runs = None, set(), []
    for run, clusters in enumerate([together, split, together, split]):
        now = NOW + pd.Timedelta(days=run)
        keys, issued, retired = assign(record_keys, clusters, ages, previous, ever, now)
        fresh = {k for k, t in zip(keys, issued) if t == now}
        assert not fresh & ever, f"run {run}: reissued {fresh & ever}"
        ever |= set(keys) | set(retired["retired_client_key"])
        previous = previous_run(*zip(record_keys, keys, issued))
        runs.append((keys, list(retired["retired_client_key"])))
    assert runs[0] == (["csv_drop:1"] * 3, [])
    assert runs[1] == (["csv_drop:1~2", "csv_drop:1", "csv_drop:1"], [])
    assert runs[2] == (["csv_drop:1"] * 3, ["csv_drop:1~2"])  # the merge keeps the older key
    assert runs[3] == (["csv_drop:1~3", "csv_drop:1", "csv_drop:1"], [])


def test_a_new_cluster_never_takes_a_key_another_cluster_holds():
    # csv_drop:5 left the cluster keyed "csv_drop:5" (the key stays with the larger part)
    previous = previous_run(
        ("csv_drop:5", "csv_drop:5", T_JAN), ("csv_drop:6", "csv_drop:5", T_JAN), ("csv_drop:7", "csv_drop:5", T_JAN)
    )
    keys, _, _ = assign(["csv_drop:5", "csv_drop:6", "csv_drop:7"], [0, 1, 1], [T_JAN] * 3, previous, set())
    assert keys[1:] == ["csv_drop:5", "csv_drop:5"]
    assert keys[0] != "csv_drop:5"
    assert len(set(keys)) == 2


# =================================================================================================
# Survivorship
# =================================================================================================

COLUMNS = list(dict.fromkeys(c for rule in FIELD_RULES.values() for c in rule.columns))


def record(client_key, source_system, record_id, modified, **fields):
    """One source record with every column the field rules name (None unless given)."""
    row = dict.fromkeys(COLUMNS)
    row.update(source_system=source_system, source_record_id=record_id, source_modified_at=utc(modified))
    row.update(fields)
    return {"client_key": client_key, "record_key": f"{source_system}:{record_id}", **row}


def golden(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    frame["source_modified_at"] = pd.to_datetime(frame["source_modified_at"], utc=True)
    return golden_records(frame).set_index("client_key")


def test_a_value_beats_a_blank_whatever_the_source():
    # the CRM is trusted first for parent_org, but it has none: the drop's value survives
    out = golden(
        record("K", "crm_api", "1", "2026-06-01", client_name="Atlas", parent_org=None),
        record("K", "csv_drop", "D1", "2026-01-01", client_name="Atlas", parent_org="Atlas Holdings"),
    )
    assert out.loc["K", "parent_org"] == "Atlas Holdings"


def test_the_crm_beats_a_drop_for_names_even_when_the_drop_is_newer():
    out = golden(
        record("K", "crm_api", "1", "2026-01-01", client_name="Atlas Capital Partners"),
        record("K", "csv_drop", "D1", "2026-11-01", client_name="ATLAS CAPITAL PTNRS"),
    )
    assert out.loc["K", "client_name"] == "Atlas Capital Partners"


def test_the_crm_beats_a_drop_for_regions_and_the_spelling_travels_with_it():
    out = golden(
        record("K", "csv_drop", "D1", "2026-11-01", client_name="A", region="West", region_as_sent="W"),
        record("K", "crm_api", "1", "2026-01-01", client_name="A", region="Northeast", region_as_sent="NE"),
    )
    assert (out.loc["K", "region"], out.loc["K", "region_as_sent"]) == ("Northeast", "NE")


def test_a_usable_region_beats_an_unknown_spelling_even_from_the_crm():
    # the CRM's "Pacific Rim" maps to no canonical region; the drop's "W" does
    out = golden(
        record("K", "crm_api", "1", "2026-06-01", client_name="A", region=None, region_as_sent="Pacific Rim"),
        record("K", "csv_drop", "D1", "2026-01-01", client_name="A", region="West", region_as_sent="W"),
    )
    assert (out.loc["K", "region"], out.loc["K", "region_as_sent"]) == ("West", "W")


def test_an_unknown_spelling_beats_a_blank():
    out = golden(
        record("K", "crm_api", "1", "2026-06-01", client_name="A", region=None, region_as_sent=None),
        record("K", "csv_drop", "D1", "2026-01-01", client_name="A", region=None, region_as_sent="Pacific Rim"),
    )
    assert out.loc["K", "region_as_sent"] == "Pacific Rim" and pd.isna(out.loc["K", "region"])


def test_status_and_size_come_from_the_most_recent_record_whatever_the_source():
    out = golden(
        record("K", "crm_api", "1", "2026-01-01", client_name="A", status="active", aum_usd=1e6, aum_as_sent="1000000"),
        record("K", "csv_drop", "D1", "2026-11-01", client_name="A", status="inactive", aum_usd=2e6, aum_as_sent="2000000"),
    )
    assert out.loc["K", "status"] == "inactive"
    assert (out.loc["K", "aum_usd"], out.loc["K", "aum_as_sent"]) == (2e6, "2000000")
    # ... while the name still comes from the CRM
    out = golden(
        record("K", "crm_api", "1", "2026-01-01", client_name="From CRM", status="active"),
        record("K", "csv_drop", "D1", "2026-11-01", client_name="From drop", status="inactive"),
    )
    assert (out.loc["K", "client_name"], out.loc["K", "status"]) == ("From CRM", "inactive")


def test_an_unusable_size_does_not_replace_an_older_usable_one():
    out = golden(
        record("K", "crm_api", "1", "2026-01-01", client_name="A", aum_usd=5e6, aum_as_sent="5000000"),
        record("K", "csv_drop", "D1", "2026-11-01", client_name="A", aum_usd=None, aum_as_sent="n/a"),
    )
    assert (out.loc["K", "aum_usd"], out.loc["K", "aum_as_sent"]) == (5e6, "5000000")


def test_within_one_source_the_most_recent_record_wins():
    out = golden(
        record("K", "csv_drop", "D1", "2026-01-01", client_name="Old Name"),
        record("K", "csv_drop", "D2", "2026-03-01", client_name="New Name"),
    )
    assert out.loc["K", "client_name"] == "New Name"


def test_full_ties_are_broken_by_record_key_in_any_input_order():
    rows = [
        record("K", "csv_drop", "D2", "2026-01-01", client_name="Name Two", status="active"),
        record("K", "csv_drop", "D1", "2026-01-01", client_name="Name One", status="inactive"),
    ]
    for order in (rows, rows[::-1]):
        out = golden(*order)
        assert (out.loc["K", "client_name"], out.loc["K", "status"]) == ("Name One", "inactive")  # csv_drop:D1 < csv_drop:D2


def test_source_columns_name_the_most_recent_record():
    out = golden(
        record("K", "crm_api", "1", "2026-01-01", client_name="A"),
        record("K", "csv_drop", "D1", "2026-11-01", client_name="A"),
    )
    assert (out.loc["K", "source_system"], out.loc["K", "source_record_id"]) == ("csv_drop", "D1")
    assert out.loc["K", "source_modified_at"] == utc("2026-11-01")


def test_one_row_per_client_key_with_its_record_count():
    out = golden(
        record("K1", "crm_api", "1", "2026-01-01", client_name="A"),
        record("K1", "csv_drop", "D1", "2026-02-01", client_name="A"),
        record("K1", "csv_drop", "D2", "2026-03-01", client_name="A"),
        record("K2", "crm_api", "2", "2026-01-01", client_name="B", parent_org="B Group"),
    )
    assert sorted(out.index) == ["K1", "K2"]
    assert out["source_record_count"].to_dict() == {"K1": 3, "K2": 1}
    # a single record is its own golden row, unchanged
    assert (out.loc["K2", "client_name"], out.loc["K2", "parent_org"], out.loc["K2", "source_record_id"]) == ("B", "B Group", "2")


def test_fields_of_one_golden_row_may_come_from_different_records():
    out = golden(
        record(
            "K",
            "crm_api",
            "1",
            "2026-01-01",
            client_name="Atlas",
            parent_org=None,
            primary_advisor_email=None,
            advisor_email_as_sent=None,
        ),
        record(
            "K",
            "csv_drop",
            "D1",
            "2026-02-01",
            client_name="ATLAS",
            parent_org="Atlas Holdings",
            primary_advisor_email="a@x.com",
            advisor_email_as_sent="A@X.com",
        ),
    )
    row = out.loc["K"]
    assert (row["client_name"], row["parent_org"], row["primary_advisor_email"], row["advisor_email_as_sent"]) == (
        "Atlas",
        "Atlas Holdings",
        "a@x.com",
        "A@X.com",
    )


# =================================================================================================
# Human decisions file
# =================================================================================================

HEADER = "record_a,record_b,decision,note\n"


def decisions_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "decisions.csv"
    path.write_text(text)
    return path


def problem(tmp_path, text) -> str:
    """The message of the MatchDecisionsError the file raises."""
    with pytest.raises(MatchDecisionsError) as error:
        read_decisions(decisions_file(tmp_path, text))
    return str(error.value)


def test_a_valid_file_is_read_with_pairs_ordered_and_decisions_lower_cased(tmp_path):
    decisions = read_decisions(
        decisions_file(
            tmp_path,
            HEADER
            + "csv_drop:D000042,crm_api:100017,must_link,same firm: renamed after the 2025 merger\n crm_api:100311 , crm_api:100987 , Cannot_Link ,two family offices\n",
        )
    )
    pairs = decisions.pairs
    assert pairs[["record_a", "record_b", "decision"]].values.tolist() == [
        ["crm_api:100017", "csv_drop:D000042", MUST_LINK],  # written b, a: stored a < b
        ["crm_api:100311", "crm_api:100987", CANNOT_LINK],
    ]
    assert (pairs["record_a"] < pairs["record_b"]).all()
    assert pairs["note"].tolist() == ["same firm: renamed after the 2025 merger", "two family offices"]
    assert pairs["line"].tolist() == [2, 3]
    assert decisions.of(MUST_LINK)["record_b"].tolist() == ["csv_drop:D000042"]


def test_a_missing_file_means_no_decisions(tmp_path):
    decisions = read_decisions(tmp_path / "nowhere.csv")
    assert decisions.pairs.empty
    assert {"record_a", "record_b", "decision", "note", "line"} <= set(decisions.pairs.columns)


def test_a_header_only_file_means_no_decisions(tmp_path):
    assert read_decisions(decisions_file(tmp_path, HEADER)).pairs.empty


@pytest.mark.parametrize(
    ("bad", "column"),
    [
        ("crm:1", "record_a"),
        ("crm_api", "record_a"),
        ("crm_api:", "record_a"),
        ("crm_api:bad id!", "record_a"),
        ("1", "record_a"),
    ],
)
def test_a_malformed_record_key_is_named_with_its_line(tmp_path, bad, column):
    message = problem(tmp_path, HEADER + "crm_api:1,crm_api:2,must_link,\n" + f"{bad},csv_drop:9,must_link,\n")
    assert "decisions.csv" in message
    assert f"line 3: {column} {bad!r} is not <source_system>:<client_id>" in message


def test_a_malformed_record_b_is_named_too(tmp_path):
    message = problem(tmp_path, HEADER + "crm_api:1,sales:2,cannot_link,\n")
    assert "line 2: record_b 'sales:2'" in message


def test_an_unknown_decision_is_named_with_its_line(tmp_path):
    message = problem(tmp_path, HEADER + "crm_api:1,crm_api:2,must_link,\ncrm_api:1,crm_api:3,maybe,\n")
    assert f"line 3: decision 'maybe' is not {MUST_LINK} or {CANNOT_LINK}" in message


def test_a_record_paired_with_itself_is_named_with_its_line(tmp_path):
    message = problem(tmp_path, HEADER + "csv_drop:7,csv_drop:7,must_link,\n")
    assert "line 2: a record is paired with itself (csv_drop:7)" in message


def test_every_problem_is_reported_at_once(tmp_path):
    message = problem(
        tmp_path, HEADER + "bad,crm_api:2,must_link,\ncrm_api:1,crm_api:2,must_link,\ncrm_api:1,crm_api:3,perhaps,\n"
    )
    assert "line 2:" in message and "line 4:" in message and "line 3:" not in message


def test_must_and_cannot_for_the_same_pair_is_an_error_naming_both_lines(tmp_path):
    # written in opposite orders: still the same pair
    message = problem(
        tmp_path, HEADER + "crm_api:1,csv_drop:2,must_link,\ncrm_api:5,crm_api:6,must_link,\ncsv_drop:2,crm_api:1,cannot_link,\n"
    )
    assert "lines 2, 4 both must-link and cannot-link crm_api:1 and csv_drop:2" in message


def test_the_same_decision_written_twice_is_kept_once(tmp_path):
    decisions = read_decisions(
        decisions_file(tmp_path, HEADER + "crm_api:1,csv_drop:2,must_link,\ncsv_drop:2,crm_api:1,must_link,again\n")
    )
    assert decisions.pairs[["record_a", "record_b"]].values.tolist() == [["crm_api:1", "csv_drop:2"]]


def test_wrong_columns_are_an_error(tmp_path):
    message = problem(tmp_path, "a,b,decision\ncrm_api:1,crm_api:2,must_link\n")
    assert "expected columns record_a, record_b, decision, note" in message


def test_parse_decisions_names_the_source_given(tmp_path):
    frame = pd.DataFrame({"record_a": ["crm_api:1"], "record_b": ["crm_api:1"], "decision": ["must_link"], "note": [None]})
    with pytest.raises(MatchDecisionsError, match=r"^my-source: line 2: a record is paired with itself"):
        parse_decisions(frame, "my-source")


def test_the_note_column_is_optional(tmp_path):
    # "(note optional)", says the column check
    decisions = read_decisions(decisions_file(tmp_path, "record_a,record_b,decision\ncrm_api:1,csv_drop:2,must_link\n"))
    assert decisions.pairs[["record_a", "record_b", "decision"]].values.tolist() == [["crm_api:1", "csv_drop:2", MUST_LINK]]


def test_line_numbers_count_comment_and_blank_lines(tmp_path):
    # the error must name the line an analyst sees in the editor: line 5 here
    text = HEADER + "# decisions from the 2026 review\n\ncrm_api:1,crm_api:2,must_link,\ncrm_api:3,crm_api:3,must_link,\n"
    message = problem(tmp_path, text)
    assert "line 5: a record is paired with itself (crm_api:3)" in message


def test_a_note_is_kept_whole(tmp_path):
    decisions = read_decisions(decisions_file(tmp_path, HEADER + "crm_api:1,csv_drop:2,must_link,ticket #4521: same firm\n"))
    assert decisions.pairs["note"].tolist() == ["ticket #4521: same firm"]
