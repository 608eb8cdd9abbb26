"""A value handed from one step to a later one of the same run: only to that run, under the same fingerprint, once."""

import pandas as pd

from crm_territory.logic.matching.client_dim import build_client_dim, client_dim_from_records, client_records
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.wiring import run_memo
from crm_territory_tests.support import utc
from crm_territory_tests.support.books import labelled_raw_clients


def test_a_value_is_taken_once_by_the_same_run_under_the_same_fingerprint():
    value = object()
    run_memo.hand_over("run-1", "client_records", "f1", value)
    assert run_memo.take("run-1", "client_records", "f1") is value
    assert run_memo.take("run-1", "client_records", "f1") is None  # taken: gone


def test_another_run_or_fingerprint_or_name_misses():
    run_memo.hand_over("run-2", "client_records", "f1", "records")
    assert run_memo.take("run-3", "client_records", "f1") is None
    assert run_memo.take("run-2", "other", "f1") is None
    assert run_memo.take("run-2", "client_records", "edited reference") is None
    assert run_memo.take("run-2", "client_records", "f1") is None  # a miss under another fingerprint drops it too


def test_a_later_run_drops_what_an_earlier_run_never_took():
    run_memo.hand_over("run-4", "client_records", "f", "left behind")
    run_memo.hand_over("run-5", "client_records", "f", "this run's")
    assert run_memo.held() == 1
    assert run_memo.take("run-4", "client_records", "f") is None
    assert run_memo.take("run-5", "client_records", "f") == "this run's"


def _aliases(region: str) -> ReferenceData:
    return ReferenceData({"east": region}, {"smb": "SMB"}, {"SMB": "advisor"})


def test_reference_fingerprint_follows_every_alias():
    assert _aliases("EAST").fingerprint == _aliases("EAST").fingerprint
    assert _aliases("EAST").fingerprint != _aliases("NORTHEAST").fingerprint


def test_client_dim_from_handed_over_records_is_the_one_computed_in_the_step(reference):
    raw, _ = labelled_raw_clients(500, seed=7, now=utc("2026-12-07"))
    records = client_records(raw, reference)
    before = records.copy(deep=True)
    handed = client_dim_from_records(records, None)
    pd.testing.assert_frame_equal(handed, build_client_dim(raw, reference))
    assert handed["region"].notna().any()  # a real book: canonical values, not a frame of blanks
    pd.testing.assert_frame_equal(records, before)  # the taker does not change what it was handed
