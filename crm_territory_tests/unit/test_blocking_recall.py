"""Recall lost to blocking (the bench's measure): a tiny hand-made book whose true pairs, and which of them
no blocking pass compares, are worked out by hand from the passes' documented keys (blocking.py)."""

from __future__ import annotations

import pandas as pd

from crm_territory.logic.matching.client_dim import client_records
from crm_territory_tests.benchmarks.blocking_recall import blocking_recall, true_pairs
from crm_territory_tests.support import utc
from crm_territory_tests.support.books import raw_clients_frame

NOW = utc("2026-11-26")


def raw(rows: list[dict]) -> pd.DataFrame:
    """A raw_clients-like frame: one version per record of source csv_drop."""
    return raw_clients_frame(rows, NOW)


# client_id, name, tax id, date of birth, postcode, the person it truly is
BOOK = [
    # A: the same name -> compared ("same name")
    ("A1", "Jane Smith", None, None, None, "A"),
    ("A2", "Jane Smith", None, None, None, "A"),
    # B: a nickname, nothing else shared: no pass compares them (first words "robert" / "bob" are 4 edits apart)
    ("B1", "Robert Quinlan", None, None, "3000", "B"),
    ("B2", "Bob Quinlanne", None, None, "4000", "B"),
    # C: given and family name swapped; same date of birth and postcode -> compared ("same date of birth and postcode")
    ("C1", "Mary Brown", None, "1970-05-05", "2000", "C"),
    ("C2", "Brown Mary", None, "1970-05-05", "2000", "C"),
    # D: D1-D2 share the first word, D2-D3 the tax id; D1-D3 share no key (no postcode, no date of birth, no tax id
    # on D1, first words "zorander" / "vayle", swapped and mistyped): never compared, but joined through D2
    ("D1", "Zorander Vale", None, None, None, "D"),
    ("D2", "Zorander Vail", "123456789", None, None, "D"),
    ("D3", "Vayle Zorander", "123456789", None, None, "D"),
    # E: another Jane, compared with the A's ("same first word") but a different person: not a true pair
    ("E1", "Jane Doe", None, None, None, "E"),
    # F: F1 loaded; its duplicate F2 never reached the matcher (quarantined)
    ("F1", "Pat Kline", None, None, None, "F"),
]


def test_true_pairs_are_listed_from_the_truth_alone() -> None:
    entity = pd.Series(["x", "x", "x", "y", None, None], index=["a", "b", "c", "d", "e", "f"])
    left, right = true_pairs(entity)
    assert sorted(zip(left, right)) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_recall_lost_to_blocking_on_a_hand_made_book(reference) -> None:
    rows = [
        {"client_id": c, "client_name": name, "tax_id": tax, "date_of_birth": born, "postal_code": post}
        for c, name, tax, born, post, _ in BOOK
    ]
    records = client_records(raw(rows), reference)
    entity = pd.Series({f"csv_drop:{c}": person for c, *_, person in BOOK} | {"csv_drop:F2": "F"})

    measured = blocking_recall(records, entity)

    # true pairs: A 1, B 1, C 1, D 3 (D1-D2, D1-D3, D2-D3), F 1 = 7
    assert measured.true_pairs == 7
    assert measured.not_loaded == 1  # F1-F2
    assert measured.never_compared == 2  # B1-B2 and D1-D3
    assert measured.unreachable == 1  # B1-B2 (D1-D3 joins through D2)
    assert measured.lost == 2 / 7
    assert measured.lost_unreachable == 1 / 7
    assert measured.lost_not_loaded == 1 / 7
    # the passes the book's fields switch on are the matcher's, and they found pairs
    assert measured.pairs_by_key["same tax id"] == 1
    assert measured.pairs_by_key["same date of birth and postcode"] == 1


def test_a_record_order_other_than_the_key_order_changes_nothing(reference) -> None:
    rows = [
        {"client_id": c, "client_name": name, "tax_id": tax, "date_of_birth": born, "postal_code": post}
        for c, name, tax, born, post, _ in reversed(BOOK)
    ]
    records = client_records(raw(rows), reference).iloc[::-1]
    entity = pd.Series({f"csv_drop:{c}": person for c, *_, person in BOOK})
    measured = blocking_recall(records, entity)
    assert (measured.true_pairs, measured.never_compared, measured.unreachable) == (6, 2, 1)
