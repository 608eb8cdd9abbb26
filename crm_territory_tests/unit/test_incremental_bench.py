"""The incremental bench's pure parts: the change drop it lands, and the table comparison that says "identical"."""

from __future__ import annotations

import json

import pandas as pd

from crm_territory_tests.benchmarks.incremental import ADDED_SHARE, change_rows, excluded_columns, table_differences

CHANGED = ("client_name", "region", "parent_org")


def _book(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": [str(100_000 + i) for i in range(n)],
            "client_name": [f"Client {i} Advisory" for i in range(n)],
            "region": [("Northeast", "Midwest", "West", "")[i % 4] for i in range(n)],
            "segment": ["Retail"] * n,
            "parent_org": [f"Parent {i % 7}" if i % 3 else "" for i in range(n)],
            "advisor_email": [f"a{i % 5}@example.com" for i in range(n)],
        }
    )


def test_change_rows_resends_distinct_clients_changed_and_adds_new_ones():
    book = _book()
    rows = change_rows(book, 50, seed=3)
    assert list(rows.columns) == list(book.columns)
    assert len(rows) == 50
    assert rows["client_id"].is_unique
    resent = rows[rows["client_id"].isin(book["client_id"])]
    added = rows[~rows["client_id"].isin(book["client_id"])]
    assert len(added) == round(50 * ADDED_SHARE)
    before = book.set_index("client_id").loc[resent["client_id"]].reset_index()
    now = resent.reset_index(drop=True)
    # every re-sent client differs from its book row in name, region or parent, and nowhere else
    differs = pd.DataFrame({c: before[c] != now[c] for c in book.columns})
    assert differs[list(CHANGED)].any(axis=1).all()
    assert not differs.drop(columns=list(CHANGED)).any(axis=None)
    assert set(now["region"]) <= set(book["region"])


def test_change_rows_is_reproducible_and_leaves_the_book_alone():
    book = _book()
    copy = book.copy()
    pd.testing.assert_frame_equal(change_rows(book, 20, seed=1), change_rows(book, 20, seed=1))
    pd.testing.assert_frame_equal(book, copy)


def test_change_rows_beyond_the_book_adds_the_rest():
    rows = change_rows(_book(10), 30, seed=2)
    assert len(rows) == 30
    assert rows["client_id"].is_unique


def _folder(root, tables: dict[str, str]):
    (root / "core").mkdir(parents=True)
    (root / "published.json").write_text(json.dumps({"tables": {name: {} for name in tables}}))
    for name, text in tables.items():
        (root / "core" / f"{name}.csv").write_text(text)
    return root


def test_table_differences_ignores_run_time_columns_and_row_order(tmp_path):
    a = _folder(tmp_path / "a", {"client_dim": "client_key,name,valid_to\nk1,A,2026-01-01\nk2,B,\n"})
    b = _folder(tmp_path / "b", {"client_dim": "client_key,name,valid_to\nk2,B,2026-02-02\nk1,A,\n"})
    assert table_differences(a, b) == {}


def test_table_differences_names_a_changed_table_and_one_published_on_one_side(tmp_path):
    a = _folder(tmp_path / "a", {"client_dim": "client_key,name\nk1,A\n", "client_xref": "record_key,client_key\nr1,k1\n"})
    b = _folder(tmp_path / "b", {"client_dim": "client_key,name\nk1,B\n"})
    differing = table_differences(a, b)
    assert sorted(differing) == ["client_dim", "client_xref"]
    assert "name" in differing["client_dim"]
    assert "A only" in differing["client_xref"]


def test_a_reason_is_compared_except_match_models():
    assert {"retired_at", "reason"} & excluded_columns("client_key_retirements") == {"retired_at"}
    assert "reason" not in excluded_columns("quarantined_clients")
    assert {"re_estimated", "reason", "estimated_at"} <= excluded_columns("match_model")


def test_table_differences_compares_the_text_as_written(tmp_path):
    a = _folder(tmp_path / "a", {"client_dim": 'client_key,note\nk1,NA\nk2,"two\nlines"\n'})
    same = _folder(tmp_path / "same", {"client_dim": 'client_key,note\nk2,"two\nlines"\nk1,NA\n'})
    empty = _folder(tmp_path / "empty", {"client_dim": 'client_key,note\nk1,\nk2,"two\nlines"\n'})
    assert table_differences(a, same) == {}
    assert list(table_differences(a, empty)) == ["client_dim"]
