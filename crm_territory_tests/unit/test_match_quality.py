"""Accuracy of entity resolution against the mock CRM's planted duplicates, and the pairwise metric itself."""

import pandas as pd
import pytest

from crm_territory.logic.ingest.api_snapshot import records_to_frame
from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.matching.client_dim import client_records
from crm_territory.logic.matching.comparisons import parse_comparisons
from crm_territory.logic.matching.decisions import MatchDecisions
from crm_territory.logic.matching.quality import pair_quality
from crm_territory.logic.matching.resolve import resolve
from crm_territory_tests.support import utc
from mock_api.generator import labelled_book


def test_pair_quality_counts_pairs_from_cluster_sizes():
    # truth: {a, b, c} one organisation, {d} another; predicted: {a, b} and {c, d}
    truth = pd.Series(["X", "X", "X", "Y"], index=list("abcd"))
    predicted = pd.Series([1, 1, 2, 2], index=list("abcd"))
    q = pair_quality(predicted, truth)
    assert (q.true_pairs, q.predicted_pairs, q.correct_pairs) == (3, 2, 1)  # ab ac bc | ab cd | ab
    assert q.precision == pytest.approx(1 / 2) and q.recall == pytest.approx(1 / 3) and q.f1 == pytest.approx(0.4)


def test_pair_quality_of_the_truth_itself_is_perfect_and_of_singletons_finds_nothing():
    truth = pd.Series(["X", "X", "Y", "Z", "Z", "Z"])
    assert pair_quality(truth, truth).f1 == 1.0
    singletons = pair_quality(pd.Series(range(6)), truth)
    assert singletons.predicted_pairs == 0 and singletons.recall == 0.0 and singletons.precision == 1.0


@pytest.fixture(scope="module")
def labelled_resolution(reference):
    """20,000 labelled records (CRM API book + an overlapping drop) through ingestion and entity resolution."""
    book = labelled_book(20_000, seed=7)
    now = utc("2026-11-26")
    drop = book.drop.to_csv(index=False).encode()
    raw = assemble_raw_clients(
        [(LandingFile("drop.csv", len(drop), now), read_drop("drop.csv", drop))],
        records_to_frame([(1, book.api.to_dict(orient="records"))], now),
        now,
    ).raw_clients
    records = client_records(raw, reference)
    resolution = resolve(records, MatchDecisions.none(), None, None, now)
    truth = book.truth.assign(record=book.truth["source_system"] + ":" + book.truth["client_id"]).set_index("record")["entity_id"]
    return records, resolution, truth


def test_planted_duplicates_are_found_at_the_target_accuracy(labelled_resolution):
    records, resolution, truth = labelled_resolution
    xref = resolution.xref
    record = (xref["source_system"] + ":" + xref["source_record_id"]).to_numpy()
    quality = pair_quality(pd.Series(xref["client_key"].to_numpy(), index=record), truth.reindex(record))
    assert quality.true_pairs > 1000, "the labelled book should plant many duplicates"
    assert quality.precision >= 0.95 and quality.recall >= 0.95 and quality.f1 >= 0.95, quality
    # the naive matcher (same lower-cased name) is far behind: the variations are real
    exact = records["client_name"].str.strip().str.lower()
    naive = pair_quality(
        pd.Series(exact.to_numpy(), index=records["record_key"].to_numpy()), truth.reindex(records["record_key"].to_numpy())
    )
    assert naive.f1 < quality.f1 - 0.3


def test_blocking_compares_a_small_fraction_of_all_pairs(labelled_resolution):
    records, resolution, _ = labelled_resolution
    n = len(records)
    assert resolution.stats["candidate_pairs"] < 5 * n < n * (n - 1) // 2 / 1000


def test_the_weights_estimated_from_the_book_beat_the_hand_set_points(labelled_resolution):
    """Region, parent and advisor weighted by the match model (EM over this book) find more of the planted
    duplicates than their hand-set points, without losing precision: the model is not decoration."""
    records, resolution, truth = labelled_resolution
    hand_set = resolve(
        records,
        MatchDecisions.none(),
        None,
        None,
        utc("2026-11-26"),
        comparisons=parse_comparisons("crm_fields: {estimate: false}", "c"),
    )

    def quality(of):
        record = (of.xref["source_system"] + ":" + of.xref["source_record_id"]).to_numpy()
        return pair_quality(pd.Series(of.xref["client_key"].to_numpy(), index=record), truth.reindex(record))

    estimated, fixed = quality(resolution), quality(hand_set)
    assert set(resolution.model["m_source"]) >= {"estimated"} and set(hand_set.model["m_source"]) == {"hand-set"}
    assert estimated.recall > fixed.recall + 0.005, (estimated, fixed)
    assert estimated.precision >= fixed.precision - 0.002 and estimated.f1 > fixed.f1, (estimated, fixed)
