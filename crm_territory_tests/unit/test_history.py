"""History (SCD Type 2) and the point-in-time helpers (crm_territory/logic/history/scd2.py).

Every transition is checked against a complete expected frame written out by hand (values, order,
dtypes), so a wrong interval, a lost row or a stray extra row fails here, not only a wrong count.
The change hash is pinned to literal values: if a pandas upgrade ever changed how it hashes, every
key of every stored history would look changed on the next run, and this file says so first.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.history.point_in_time import as_of, owner_on, territory_map_as_of
from crm_territory.logic.history.scd2 import (
    ASSIGNMENT_IS_CURRENT,
    apply_scd2,
    assignments_snapshot,
    change_hash,
    check_history,
)
from crm_territory_tests.support import REPO_ROOT, utc

T0, T1, T2, T3, T4 = (utc(d) for d in ["2025-12-01", "2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"])
KEY = ["client_key"]
TRACKED = ["client_name", "region", "is_active"]
UTC_NS = "datetime64[ns, UTC]"


# ---------------------------------------------------------------- hand-built frames


def clients(rows: list[tuple]) -> pd.DataFrame:
    """A client snapshot: (client_key, client_name, region, is_active, note); note is not tracked."""
    return pd.DataFrame(
        {
            "client_key": pd.Series([r[0] for r in rows], dtype=object),
            "client_name": pd.Series([r[1] for r in rows], dtype=object),
            "region": pd.Series([r[2] for r in rows], dtype=object),
            "is_active": pd.Series([r[3] for r in rows], dtype=bool),
            "note": pd.Series([r[4] for r in rows], dtype=object),
        }
    )


def h(name, region, active) -> str:
    """The change hash of one client's tracked values (pinned to literals in test_change_hash_is_pinned)."""
    return change_hash(clients([("k", name, region, active, None)]), TRACKED)[0]


def client_history(rows: list[tuple]) -> pd.DataFrame:
    """Expected history: (client_key, client_name, region, is_active, note, valid_from, valid_to, is_current)."""
    frame = clients([r[:5] for r in rows])
    frame["valid_from"] = pd.Series([r[5] for r in rows], dtype=UTC_NS)
    frame["valid_to"] = pd.Series([pd.NaT if r[6] is None else r[6] for r in rows], dtype=UTC_NS)
    frame["is_current"] = pd.Series([r[7] for r in rows], dtype=bool)
    frame["change_hash"] = pd.Series([h(r[1], r[2], r[3]) for r in rows], dtype=object)
    return frame


def rows_of(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """The frame's rows as plain tuples (order kept), for exact comparisons."""
    return [tuple(row) for row in frame[columns].to_numpy(dtype=object).tolist()]


def scd2(history, snapshot, when):
    return apply_scd2(history, snapshot, key=KEY, tracked=TRACKED, as_of=when)


ATLAS = ("csv_drop:1", "Atlas Capital Partners", "Northeast", True, "first drop")
BEACON = ("csv_drop:2", "Beacon Wealth Management", "Northeast", True, "first drop")
CRESCENT = ("csv_drop:3", "Crescent Advisory Group", "Midwest", True, "second drop")


@pytest.fixture
def first() -> pd.DataFrame:
    """The history after the first run (T1): Atlas and Beacon, both open."""
    return scd2(None, clients([BEACON, ATLAS]), T1)


# ---------------------------------------------------------------- transitions


def test_first_snapshot_opens_one_row_per_key_in_key_order(first):
    expected = client_history([(*ATLAS, T1, None, True), (*BEACON, T1, None, True)])
    pd.testing.assert_frame_equal(first, expected)
    assert list(first.columns) == ["client_key", "client_name", "region", "is_active", "note"] + [
        "valid_from",
        "valid_to",
        "is_current",
        "change_hash",
    ]


def test_insert_opens_a_row_for_a_new_key(first):
    out = scd2(first, clients([CRESCENT, BEACON, ATLAS]), T2)
    expected = client_history([(*ATLAS, T1, None, True), (*BEACON, T1, None, True), (*CRESCENT, T2, None, True)])
    pd.testing.assert_frame_equal(out, expected)


def test_unchanged_snapshot_returns_the_history_exactly(first):
    pd.testing.assert_frame_equal(scd2(first, clients([ATLAS, BEACON]), T2), first)


def test_untracked_change_is_not_a_new_version(first):
    renoted = (*ATLAS[:4], "edited note")
    out = scd2(first, clients([renoted, BEACON]), T2)
    pd.testing.assert_frame_equal(out, first)  # the open version keeps the note it opened with


def test_change_closes_the_open_row_and_opens_a_new_one(first):
    moved = ("csv_drop:1", "Atlas Capital Partners", "Midwest", True, "second drop")
    out = scd2(first, clients([BEACON, moved]), T2)
    expected = client_history(
        [
            (*ATLAS, T1, T2, False),
            (*moved, T2, None, True),
            (*BEACON, T1, None, True),
        ]
    )
    pd.testing.assert_frame_equal(out, expected)


def test_disappear_closes_the_open_row_and_keeps_it(first):
    out = scd2(first, clients([ATLAS]), T2)
    expected = client_history([(*ATLAS, T1, None, True), (*BEACON, T1, T2, False)])
    pd.testing.assert_frame_equal(out, expected)
    # still gone later: nothing more happens to the closed row
    pd.testing.assert_frame_equal(scd2(out, clients([ATLAS]), T3), expected)


def test_empty_snapshot_closes_every_open_row(first):
    out = scd2(first, clients([]), T2)
    expected = client_history([(*ATLAS, T1, T2, False), (*BEACON, T1, T2, False)])
    pd.testing.assert_frame_equal(out, expected)


def test_reappear_opens_a_new_row_even_with_the_same_values(first):
    gone = scd2(first, clients([ATLAS]), T2)
    back = scd2(gone, clients([ATLAS, BEACON]), T3)
    expected = client_history(
        [
            (*ATLAS, T1, None, True),
            (*BEACON, T1, T2, False),
            (*BEACON, T3, None, True),
        ]
    )
    pd.testing.assert_frame_equal(back, expected)
    assert back.loc[1, "change_hash"] == back.loc[2, "change_hash"]  # same values, yet a new version


def test_every_transition_at_once_then_idempotent_at_the_same_and_a_later_as_of(first):
    with_crescent = scd2(first, clients([ATLAS, BEACON, CRESCENT]), T2)
    renamed = ("csv_drop:1", "Atlas Capital", "Northeast", True, "third drop")
    snapshot = clients([renamed, CRESCENT])  # Atlas changes, Beacon leaves, Crescent unchanged
    out = scd2(with_crescent, snapshot, T3)
    expected = client_history(
        [
            (*ATLAS, T1, T3, False),
            (*renamed, T3, None, True),
            (*BEACON, T1, T3, False),
            (*CRESCENT, T2, None, True),
        ]
    )
    pd.testing.assert_frame_equal(out, expected)
    pd.testing.assert_frame_equal(scd2(out, snapshot, T3), expected)  # same as_of
    pd.testing.assert_frame_equal(scd2(out, snapshot, T4), expected)  # later as_of


def test_input_order_and_index_do_not_matter(first):
    snapshot = clients([CRESCENT, BEACON, ATLAS])
    snapshot.index = [30, 10, 20]
    shuffled_history = first.iloc[::-1]
    shuffled_history.index = [7, 3]
    expected = scd2(first, clients([ATLAS, BEACON, CRESCENT]), T2)
    pd.testing.assert_frame_equal(scd2(shuffled_history, snapshot, T2), expected)


def test_the_result_does_not_share_values_with_the_inputs(first):
    snapshot = clients([ATLAS, BEACON])
    out = scd2(first, snapshot, T2)
    out.loc[0, "client_name"] = "edited"
    out.loc[0, "valid_to"] = T3
    assert first.loc[0, "client_name"] == ATLAS[1] and pd.isna(first.loc[0, "valid_to"])
    assert snapshot.loc[0, "client_name"] == ATLAS[1]


def test_missing_values_in_tracked_columns():
    no_region = ("csv_drop:9", "Delta Trust", None, True, None)
    start = scd2(None, clients([no_region]), T1)
    # None, NaN and pd.NA are the same missing value: no new version
    for missing in [np.nan, pd.NA]:
        pd.testing.assert_frame_equal(scd2(start, clients([(*no_region[:2], missing, *no_region[3:])]), T2), start)
    # an empty text is not missing: a change; and back to missing: another change
    empty_region = ("csv_drop:9", "Delta Trust", "", True, None)
    step2 = scd2(start, clients([empty_region]), T2)
    step3 = scd2(step2, clients([no_region]), T3)
    expected = client_history(
        [
            (*no_region, T1, T2, False),
            (*empty_region, T2, T3, False),
            (*no_region, T3, None, True),
        ]
    )
    pd.testing.assert_frame_equal(step3, expected)
    assert step3.loc[0, "change_hash"] == step3.loc[2, "change_hash"] != step3.loc[1, "change_hash"]


def test_multi_column_key_is_matched_column_by_column():
    # ("a:b", "c") and ("a", "b:c") would be one key if the key columns were glued into one text
    snapshot = pd.DataFrame({"k1": ["a:b", "a"], "k2": ["c", "b:c"], "v": [1, 2]})
    out = apply_scd2(None, snapshot, key=["k1", "k2"], tracked=["v"], as_of=T1)
    again = apply_scd2(out, snapshot.assign(v=[1, 3]), key=["k1", "k2"], tracked=["v"], as_of=T2)
    assert again[["k1", "k2", "v", "valid_from", "valid_to", "is_current"]].to_dict("records") == [
        {"k1": "a", "k2": "b:c", "v": 2, "valid_from": T1, "valid_to": T2, "is_current": False},
        {"k1": "a", "k2": "b:c", "v": 3, "valid_from": T2, "valid_to": pd.NaT, "is_current": True},
        {"k1": "a:b", "k2": "c", "v": 1, "valid_from": T1, "valid_to": pd.NaT, "is_current": True},
    ]


# ---------------------------------------------------------------- refusals


def test_an_earlier_as_of_than_the_latest_valid_from_is_refused(first):
    with pytest.raises(ValueError, match="earlier than the latest change already in history.*only moves forward"):
        scd2(first, clients([ATLAS, BEACON]), T0)


def test_an_earlier_as_of_than_the_latest_valid_to_is_refused(first):
    # latest valid_from is T1 but Beacon was closed at T3: a run "at T2" would reopen it inside its own past
    gone = scd2(first, clients([ATLAS]), T3)
    with pytest.raises(ValueError, match="history only moves forward"):
        scd2(gone, clients([ATLAS, BEACON]), T2)


def test_a_different_state_at_the_same_instant_is_refused(first):
    moved = ("csv_drop:1", "Atlas Capital Partners", "Midwest", True, None)
    with pytest.raises(ValueError, match="same instant.*later as_of"):
        scd2(first, clients([moved, BEACON]), T1)
    with pytest.raises(ValueError, match="same instant"):
        scd2(first, clients([ATLAS]), T1)  # Beacon would be closed at the instant it opened


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        (
            clients([ATLAS, ATLAS]),
            r"one row per key \(client_key\); 2 rows share a key, e.g. \[\{'client_key': 'csv_drop:1'\}\]",
        ),
        (clients([(None, "No key", "Northeast", True, None)]), "1 missing key value"),
        (clients([ATLAS]).drop(columns="region"), r"lacks column\(s\) \['region'\]"),
        (clients([ATLAS]).assign(is_current=True), r"has column\(s\) \['is_current'\].*assignments_snapshot"),
    ],
)
def test_bad_snapshots_are_refused_with_the_reason(first, snapshot, message):
    with pytest.raises(ValueError, match=message):
        scd2(first, snapshot, T2)


def test_a_history_with_two_open_rows_for_a_key_is_refused(first):
    broken = pd.concat([first, first.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"more than one open row for 1 key\(s\).*check_history"):
        scd2(broken, clients([ATLAS, BEACON]), T2)


# ---------------------------------------------------------------- check_history


def tampered(rows: list[tuple]) -> pd.DataFrame:
    """A history by hand: (client_key, valid_from, valid_to, is_current)."""
    return pd.DataFrame(
        {
            "client_key": [r[0] for r in rows],
            "valid_from": pd.Series([r[1] for r in rows], dtype=UTC_NS),
            "valid_to": pd.Series([pd.NaT if r[2] is None else r[2] for r in rows], dtype=UTC_NS),
            "is_current": pd.Series([r[3] for r in rows], dtype=bool),
            "change_hash": "0000000000000000",
        }
    )


def problems(history: pd.DataFrame) -> dict[int, str]:
    bad = check_history(history, KEY)
    assert list(bad.columns) == ["client_key", "valid_from", "valid_to", "is_current", "problem"]
    return dict(zip(bad.index, bad["problem"]))


OPEN_TWICE = "more than one open row for this key"
OVERLAP = "overlaps an earlier version of this key (starts before that version's valid_to)"
EMPTY = "valid_to is not after valid_from"
INCONSISTENT = "is_current disagrees with valid_to (exactly the rows without valid_to are current)"


def test_check_history_accepts_what_apply_scd2_builds(first):
    out = scd2(scd2(scd2(first, clients([ATLAS, CRESCENT]), T2), clients([BEACON, CRESCENT]), T3), clients([]), T4)
    assert rows_of(out, ["client_key", "valid_from", "valid_to", "is_current"]) == [
        (ATLAS[0], T1, T3, False),
        (BEACON[0], T1, T2, False),
        (BEACON[0], T3, T4, False),
        (CRESCENT[0], T2, T4, False),
    ]
    assert problems(out) == {}


def test_check_history_finds_two_open_rows():
    history = tampered([("a", T1, None, True), ("a", T2, None, True), ("b", T1, None, True)])
    assert problems(history) == {0: OPEN_TWICE, 1: f"{OPEN_TWICE}; {OVERLAP}"}


def test_check_history_finds_overlaps_beyond_the_previous_row():
    history = tampered(
        [
            ("a", T1, T2, False),
            ("a", T2, T3, False),  # touching the previous interval is fine
            ("b", T1, T4, False),
            ("b", T2, T3, False),  # inside the first
            ("b", T3, None, True),  # after the previous row, but inside the first (ends T4)
            ("c", T1, T2, False),
            ("c", T3, None, True),  # a gap is fine (the key was gone)
        ]
    )
    assert problems(history) == {3: OVERLAP, 4: OVERLAP}


def test_check_history_finds_empty_and_reversed_intervals():
    history = tampered([("a", T2, T2, False), ("b", T3, T2, False), ("c", T1, T2, False)])
    assert problems(history) == {0: EMPTY, 1: EMPTY}


def test_check_history_finds_is_current_disagreeing_with_valid_to():
    history = tampered([("a", T1, T2, True), ("b", T1, None, False), ("c", T1, None, True), ("d", T1, T2, False)])
    assert problems(history) == {0: INCONSISTENT, 1: INCONSISTENT}


def test_check_history_keeps_the_rows_index_and_values():
    history = tampered([("a", T1, T2, True)])
    history.index = [41]
    bad = check_history(history, KEY)
    assert bad.to_dict("index") == {
        41: {"client_key": "a", "valid_from": T1, "valid_to": T2, "is_current": True, "problem": INCONSISTENT}
    }


# ---------------------------------------------------------------- the change hash


HASH_FRAME = clients(
    [
        ("csv_drop:1", "Atlas Capital Partners", "Northeast", True, None),
        ("csv_drop:2", "Beacon Wealth Management", None, True, None),
        ("csv_drop:3", None, "Midwest", False, None),
    ]
)
PINNED = ["a2f4fc01f5715422", "8820da0153568729", "950ccccc2be51a2c"]


def test_change_hash_is_pinned():
    hashes = change_hash(HASH_FRAME, TRACKED)
    assert list(hashes) == PINNED
    assert list(hashes.index) == list(HASH_FRAME.index) and hashes.dtype == object


def test_change_hash_is_the_same_in_a_fresh_process_with_another_hash_seed():
    script = textwrap.dedent(
        """
        import pandas as pd
        from crm_territory.logic.history.scd2 import change_hash
        frame = pd.DataFrame({
            "client_name": ["Atlas Capital Partners", "Beacon Wealth Management", None],
            "region": ["Northeast", None, "Midwest"],
            "is_active": [True, True, False],
        })
        print(",".join(change_hash(frame, ["is_active", "region", "client_name"])))
        """
    )
    hashes = []
    for seed in ["1", "2"]:  # Python's own str hash differs between these processes; ours must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        hashes.append(done.stdout.strip().split(","))
    assert hashes == [PINNED, PINNED]


def typed_frame() -> pd.DataFrame:
    """One row with a tracked column of every kind the tables use, and an untracked one."""
    return pd.DataFrame(
        {
            "text": pd.Series(["Northeast"], dtype=object),
            "flag": pd.Series([True], dtype=bool),
            "amount": pd.Series([1_000_000.0], dtype="float64"),
            "count": pd.Series([3], dtype="Int64"),
            "seen_at": pd.Series([T1], dtype=UTC_NS),
            "untracked": pd.Series(["x"], dtype=object),
        }
    )


TYPED = ["text", "flag", "amount", "count", "seen_at"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("text", "Northwest"),
        ("text", None),
        ("text", ""),
        ("flag", False),
        ("amount", 1_000_000.5),
        ("amount", np.nan),
        ("count", 4),
        ("count", pd.NA),
        ("seen_at", T2),
        ("seen_at", pd.NaT),
    ],
)
def test_change_hash_changes_with_any_tracked_column(column, value):
    before = change_hash(typed_frame(), TYPED)[0]
    changed = typed_frame()
    changed[column] = pd.Series([value], dtype=changed[column].dtype)
    assert change_hash(changed, TYPED)[0] != before


def test_change_hash_ignores_untracked_columns_and_the_order_columns_are_listed_in():
    base = change_hash(typed_frame(), TYPED)[0]
    assert change_hash(typed_frame().assign(untracked="y"), TYPED)[0] == base
    assert change_hash(typed_frame(), list(reversed(TYPED)))[0] == base
    assert change_hash(typed_frame()[["untracked", *reversed(TYPED)]], TYPED)[0] == base  # frame column order


def test_change_hash_treats_every_missing_value_alike_and_apart_from_look_alike_text():
    frame = pd.DataFrame({"v": pd.Series([None, np.nan, pd.NA, "", "None", "nan", "<NA>"], dtype=object)})
    hashes = list(change_hash(frame, ["v"]))
    assert hashes[0] == hashes[1] == hashes[2]
    assert len(set(hashes[2:])) == 5


def test_change_hash_keeps_columns_apart_and_instants_equal_across_zones():
    glued = pd.DataFrame({"a": ["ab", "a"], "b": ["", "b"]})  # "ab" + "" and "a" + "b": same text glued together
    first, second = change_hash(glued, ["a", "b"])
    assert first != second
    in_utc = pd.DataFrame({"t": pd.Series([T1], dtype=UTC_NS)})
    in_paris = pd.DataFrame({"t": pd.Series([T1], dtype=UTC_NS).dt.tz_convert("Europe/Paris")})
    assert change_hash(in_paris, ["t"])[0] == change_hash(in_utc, ["t"])[0]


# ---------------------------------------------------------------- point in time


def fact(rows: list[tuple]) -> pd.DataFrame:
    """assignments_fact rows: (client_key, territory_id, advisor, assignment_type, is_current)."""
    return pd.DataFrame(
        {
            "client_key": [r[0] for r in rows],
            "territory_id": [r[1] for r in rows],
            "primary_advisor_email": [r[2] for r in rows],
            "assignment_type": [r[3] for r in rows],
            "is_current": pd.Series([r[4] for r in rows], dtype=bool),
        }
    )


A, B, C = "csv_drop:1", "csv_drop:2", "csv_drop:3"
ONE, TWO, THREE, FOUR = "advisor1@example.com", "advisor2@example.com", "advisor3@example.com", "advisor4@example.com"
ASSIGNMENT_KEY = ["client_key", "territory_id", "assignment_type"]
SNAPSHOTS = [
    # T1: A in NOR_INS (advisor 1) with a SECONDARY row in MID_INS; B in NOR_RET (advisor 2)
    (
        T1,
        fact(
            [
                (A, "NOR_INS", ONE, "PRIMARY", True),
                (A, "MID_INS", ONE, "SECONDARY", True),
                (B, "NOR_RET", TWO, "PRIMARY", True),
            ]
        ),
    ),
    # T2: A's advisor becomes 3; B moves to MID_INS; C arrives in MID_INS (advisor 4), SECONDARY in NOR_INS
    (
        T2,
        fact(
            [
                (A, "NOR_INS", THREE, "PRIMARY", True),
                (A, "MID_INS", THREE, "SECONDARY", True),
                (B, "MID_INS", TWO, "PRIMARY", True),
                (C, "MID_INS", FOUR, "PRIMARY", True),
                (C, "NOR_INS", FOUR, "SECONDARY", True),
            ]
        ),
    ),
    # T3: A loses its SECONDARY row; B becomes inactive (its PRIMARY row is kept, not current)
    (
        T3,
        fact(
            [
                (A, "NOR_INS", THREE, "PRIMARY", True),
                (B, "MID_INS", TWO, "PRIMARY", False),
                (C, "MID_INS", FOUR, "PRIMARY", True),
                (C, "NOR_INS", FOUR, "SECONDARY", True),
            ]
        ),
    ),
    # T4: C leaves every source; B is active again; A's SECONDARY row comes back
    (
        T4,
        fact(
            [
                (A, "NOR_INS", THREE, "PRIMARY", True),
                (A, "MID_INS", THREE, "SECONDARY", True),
                (B, "MID_INS", TWO, "PRIMARY", True),
            ]
        ),
    ),
]


@pytest.fixture(scope="module")
def assignments() -> pd.DataFrame:
    history = None
    for when, snapshot in SNAPSHOTS:
        history = apply_scd2(
            history,
            assignments_snapshot(snapshot),
            key=ASSIGNMENT_KEY,
            tracked=["primary_advisor_email", ASSIGNMENT_IS_CURRENT],
            as_of=when,
        )
    return history


def test_the_assignment_history_over_four_snapshots(assignments):
    assert check_history(assignments, ASSIGNMENT_KEY).empty
    columns = ["client_key", "territory_id", "assignment_type", "primary_advisor_email", ASSIGNMENT_IS_CURRENT]
    nat = pd.NaT
    assert rows_of(assignments, [*columns, "valid_from", "valid_to"]) == [
        (A, "MID_INS", "SECONDARY", ONE, True, T1, T2),
        (A, "MID_INS", "SECONDARY", THREE, True, T2, T3),
        (A, "MID_INS", "SECONDARY", THREE, True, T4, nat),
        (A, "NOR_INS", "PRIMARY", ONE, True, T1, T2),
        (A, "NOR_INS", "PRIMARY", THREE, True, T2, nat),
        (B, "MID_INS", "PRIMARY", TWO, True, T2, T3),
        (B, "MID_INS", "PRIMARY", TWO, False, T3, T4),
        (B, "MID_INS", "PRIMARY", TWO, True, T4, nat),
        (B, "NOR_RET", "PRIMARY", TWO, True, T1, T2),
        (C, "MID_INS", "PRIMARY", FOUR, True, T2, T4),
        (C, "NOR_INS", "SECONDARY", FOUR, True, T2, T4),
    ]
    assert list(assignments["is_current"]) == list(assignments["valid_to"].isna())


def owners(history: pd.DataFrame, client_key: str, when) -> list[tuple]:
    rows = owner_on(history, client_key, when)
    return rows_of(rows, ["assignment_type", "territory_id", "primary_advisor_email", ASSIGNMENT_IS_CURRENT])


MID_T2_T3 = utc("2026-02-15 12:00")


@pytest.mark.parametrize(
    ("client_key", "when", "expected"),
    [
        (A, T0, []),  # before the first run: nobody knows A yet
        (A, T1, [("PRIMARY", "NOR_INS", ONE, True), ("SECONDARY", "MID_INS", ONE, True)]),
        (A, utc("2026-01-31 23:59:59"), [("PRIMARY", "NOR_INS", ONE, True), ("SECONDARY", "MID_INS", ONE, True)]),
        # at the instant of the change: the new version
        (A, T2, [("PRIMARY", "NOR_INS", THREE, True), ("SECONDARY", "MID_INS", THREE, True)]),
        (A, T3, [("PRIMARY", "NOR_INS", THREE, True)]),
        (A, T4, [("PRIMARY", "NOR_INS", THREE, True), ("SECONDARY", "MID_INS", THREE, True)]),
        (B, T1, [("PRIMARY", "NOR_RET", TWO, True)]),
        (B, MID_T2_T3, [("PRIMARY", "MID_INS", TWO, True)]),
        (B, T3, [("PRIMARY", "MID_INS", TWO, False)]),  # inactive: its last assignment, not current
        (C, T1, []),
        (C, T3, [("PRIMARY", "MID_INS", FOUR, True), ("SECONDARY", "NOR_INS", FOUR, True)]),
        (C, T4, []),  # gone from every source
        (C, utc("2030-01-01"), []),
        ("csv_drop:404", T2, []),
    ],
)
def test_owner_on(assignments, client_key, when, expected):
    assert owners(assignments, client_key, when) == expected


def test_owner_on_takes_a_plain_date_as_utc(assignments):
    assert owners(assignments, A, "2026-02-01") == owners(assignments, A, T2)
    assert owners(assignments, A, pd.Timestamp("2026-01-31 20:00", tz="America/New_York")) == owners(assignments, A, T2)


def territory_map(history, when) -> list[tuple]:
    out = territory_map_as_of(history, when)
    assert list(out.columns) == ["territory_id", "current_clients", "advisors"]
    return rows_of(out, list(out.columns))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (T0, []),
        (T1, [("NOR_INS", 1, [ONE]), ("NOR_RET", 1, [TWO])]),
        (MID_T2_T3, [("MID_INS", 2, [TWO, FOUR]), ("NOR_INS", 1, [THREE])]),
        (T3, [("MID_INS", 1, [FOUR]), ("NOR_INS", 1, [THREE])]),  # B inactive: not a current client
        (T4, [("MID_INS", 1, [TWO]), ("NOR_INS", 1, [THREE])]),  # C gone, B back
    ],
)
def test_territory_map_as_of(assignments, when, expected):
    assert territory_map(assignments, when) == expected


def test_territory_map_counts_clients_without_an_advisor_and_lists_none_for_them():
    history = apply_scd2(
        None,
        assignments_snapshot(
            fact(
                [
                    (A, "NOR_INS", None, "PRIMARY", True),
                    (B, "NOR_INS", ONE, "PRIMARY", True),
                    (C, "MID_INS", None, "PRIMARY", True),
                ]
            )
        ),
        key=ASSIGNMENT_KEY,
        tracked=["primary_advisor_email", ASSIGNMENT_IS_CURRENT],
        as_of=T1,
    )
    assert territory_map(history, T1) == [("MID_INS", 1, []), ("NOR_INS", 2, [ONE])]


def test_as_of_uses_half_open_intervals(assignments):
    at_change = as_of(assignments, T2)
    a_primary = at_change[(at_change["client_key"] == A) & (at_change["assignment_type"] == "PRIMARY")]
    assert list(a_primary["primary_advisor_email"]) == [THREE]  # valid_to excluded, valid_from included
    assert len(as_of(assignments, T0)) == 0
    assert list(as_of(assignments, T4)["valid_to"].isna()) == [True] * 3
    assert list(as_of(assignments, T4).index) == [0, 1, 2]


def test_a_snapshot_that_gains_or_loses_a_column_keeps_every_column(first):
    moved = ("csv_drop:1", "Atlas Capital Partners", "Midwest", True, "moved")
    gained = clients([moved, BEACON]).drop(columns="note").assign(rule_id=["R1", "R2"])
    out = scd2(first, gained, T2)
    assert list(out.columns[:6]) == ["client_key", "client_name", "region", "is_active", "note", "rule_id"]
    assert rows_of(out, ["client_key", "region", "note", "rule_id", "valid_from", "valid_to"]) == [
        (ATLAS[0], "Northeast", "first drop", None, T1, T2),  # older rows: the new column is missing
        (ATLAS[0], "Midwest", None, "R1", T2, pd.NaT),  # new rows: the dropped column is missing
        (BEACON[0], "Northeast", "first drop", None, T1, pd.NaT),  # unchanged: kept as it was
    ]
