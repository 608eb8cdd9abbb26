"""Incremental entity resolution gives the full resolution's tables (issue 15, item 2), table by table.

A generated book (with optional fields whose values repeat, so that exact agreements' points depend on counts)
is resolved once; random change batches (renames, typos, regions, parents, advisors, optional fields changed
or shared, records added and removed: ``support/change_batches.py``) are applied; the new book is resolved in
full and incrementally from the first resolution, and client_xref, client_matches, client_key_retirements and
match_model must be equal. The incremental runs must also have done less: kept pairs, scored fewer.
"""

import dataclasses

import pandas as pd
import pytest

from crm_territory.logic.matching.client_dim import client_records
from crm_territory.logic.matching.comparisons import DEFAULT_COMPARISONS
from crm_territory.logic.matching.decisions import MatchDecisions, parse_decisions
from crm_territory.logic.matching.incremental import record_changes
from crm_territory.logic.matching.resolve import incremental_basis, resolve
from crm_territory_tests.support import utc
from crm_territory_tests.support.books import labelled_raw_clients
from crm_territory_tests.support.change_batches import change_batch, with_optional_fields

FIRST, SECOND = utc("2026-12-01T10:00:00"), utc("2026-12-02T10:00:00")
TABLES = ("xref", "matches", "retirements", "model")


@pytest.fixture(scope="module")
def book(reference):
    raw, _ = labelled_raw_clients(4000, seed=3, now=FIRST)
    return with_optional_fields(raw, seed=5)


@pytest.fixture(scope="module")
def first(book, reference):
    return resolve(client_records(book, reference), MatchDecisions.none(), None, None, FIRST)


def both_ways(reference, before_raw, after_raw, previous, decisions=None, comparisons=DEFAULT_COMPARISONS):
    decisions = decisions or MatchDecisions.none()
    records = client_records(after_raw, reference)
    full = resolve(
        records, decisions, previous.xref, previous.retirements, SECOND, previous_model=previous.model, comparisons=comparisons
    )
    changes = record_changes(before_raw, after_raw)
    basis = incremental_basis(previous.matches, changes, client_records(changes.before, reference), len(previous.xref))
    incremental = resolve(
        records,
        decisions,
        previous.xref,
        previous.retirements,
        SECOND,
        previous_model=previous.model,
        incremental=basis,
        comparisons=comparisons,
    )
    return full, incremental


def assert_same_tables(full, incremental):
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(incremental, name).reset_index(drop=True), getattr(full, name).reset_index(drop=True), obj=name
        )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("changes", [1, 40, 250])
def test_an_incremental_resolution_gives_the_full_ones_tables(reference, book, first, seed, changes):
    after = change_batch(book, changes, seed=seed, now=SECOND)
    full, incremental = both_ways(reference, book, after, first)
    assert incremental.stats["mode"].startswith("incremental"), incremental.stats["mode"]
    assert_same_tables(full, incremental)
    # and it did less: most pairs kept, far fewer scored than the full run's candidates
    assert incremental.stats["pairs_kept"] > 0
    assert incremental.stats["pairs_scored_again"] < full.stats["candidate_pairs"] / 2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_block_size", [3, 6])
def test_blocks_crossing_the_size_limit_are_re_paired_whole(reference, book, seed, max_block_size):
    """With small blocks, changes push blocks over the limit (skipped, or chained for an exact name) and back under
    it: every pair within such a block appears or goes, not only the changed record's."""
    comparisons = dataclasses.replace(DEFAULT_COMPARISONS, max_block_size=max_block_size)
    previous = resolve(client_records(book, reference), MatchDecisions.none(), None, None, FIRST, comparisons=comparisons)
    after = change_batch(book, 60, seed=200 + seed, now=SECOND)
    full, incremental = both_ways(reference, book, after, previous, comparisons=comparisons)
    assert incremental.stats["mode"].startswith("incremental"), incremental.stats["mode"]
    assert incremental.stats["records_in_touched_blocks"] > 0  # some block did cross the limit
    assert_same_tables(full, incremental)


def test_a_chain_of_incremental_runs_stays_on_the_full_ones(reference, book, first):
    """Each run starts from the previous incremental one: errors would compound."""
    raw, previous_full, previous_incremental = book, first, first
    for seed in range(3):
        after = change_batch(raw, 30, seed=100 + seed, now=SECOND)
        records = client_records(after, reference)
        full = resolve(
            records,
            MatchDecisions.none(),
            previous_full.xref,
            previous_full.retirements,
            SECOND,
            previous_model=previous_full.model,
        )
        changes = record_changes(raw, after)
        basis = incremental_basis(
            previous_incremental.matches, changes, client_records(changes.before, reference), len(previous_incremental.xref)
        )
        incremental = resolve(
            records,
            MatchDecisions.none(),
            previous_incremental.xref,
            previous_incremental.retirements,
            SECOND,
            previous_model=previous_incremental.model,
            incremental=basis,
        )
        assert incremental.stats["mode"].startswith("incremental")
        assert_same_tables(full, incremental)
        raw, previous_full, previous_incremental = after, full, incremental


def test_human_decisions_added_and_withdrawn_are_honoured_as_in_a_full_run(reference, book):
    records = client_records(book, reference)
    keys = records["record_key"].tolist()
    decided = parse_decisions(
        pd.DataFrame(
            [(keys[0], keys[1], "must_link", "one firm"), (keys[2], keys[3], "cannot_link", "two firms")],
            columns=["record_a", "record_b", "decision", "note"],
        ),
        "test",
    )
    previous = resolve(records, decided, None, None, FIRST)
    # the must-link withdrawn, a new one given, and some records changed
    now_decided = parse_decisions(
        pd.DataFrame(
            [(keys[2], keys[3], "cannot_link", "two firms"), (keys[10], keys[11], "must_link", "same")],
            columns=["record_a", "record_b", "decision", "note"],
        ),
        "test",
    )
    after = change_batch(book, 20, seed=9, now=SECOND)
    full, incremental = both_ways(reference, book, after, previous, now_decided)
    assert incremental.stats["mode"].startswith("incremental")
    assert_same_tables(full, incremental)
    assert (incremental.matches["decided_by"] == "human").sum() == 2


def test_a_re_estimated_model_makes_the_run_full(reference, book, first):
    """A third of the book gains a postcode: the model is estimated again, so every pair's points move."""
    after = book.copy()
    gaining = after["postal_code"].isna() & (after.index % 3 == 0)
    after.loc[gaining, "postal_code"] = "99999"
    full, incremental = both_ways(reference, book, after, first)
    assert incremental.stats["mode"].startswith("full: the match model is estimated again")
    assert full.model_re_estimated
    assert_same_tables(full, incremental)


def test_a_reused_model_keeps_the_statistics_it_was_estimated_with(reference, book, first):
    """u and the records having each field are the model's, not the new book's: a pair's points do not drift."""
    after = change_batch(book, 250, seed=1, now=SECOND)
    again = resolve(
        client_records(after, reference), MatchDecisions.none(), first.xref, first.retirements, SECOND, previous_model=first.model
    )
    assert not again.model_re_estimated
    columns = ["field", "level", "u", "records_with_field", "points"]
    pd.testing.assert_frame_equal(again.model[columns], first.model[columns])


def test_record_changes_names_what_changed_and_ignores_a_row_sent_again(book):
    after = book.copy()
    after.loc[0, "client_name"] = "Renamed Holdings"
    resent = book.iloc[[5]].assign(source_file="again.csv", source_modified_at=SECOND)  # same content, a later drop
    after = pd.concat([after.drop(index=[7]), resent], ignore_index=True)
    key = lambda i: f"{book.loc[i, 'source_system']}:{book.loc[i, 'client_id']}"  # noqa: E731
    changes = record_changes(book, after)
    assert list(changes.changed) == [key(0)]
    assert list(changes.removed) == [key(7)]
    assert set(changes.before["client_id"]) == {book.loc[0, "client_id"], book.loc[7, "client_id"]}


def test_record_changes_compares_a_table_read_back_with_other_missing_values(book):
    """Storage may give text columns back as pandas strings (pd.NA for missing): equal records stay equal."""
    stored = book.astype({c: "string" for c in ("client_name", "region", "parent_org", "tax_id", "phone")})
    after = book.copy()
    after.loc[3, "region"] = "Somewhere Else"
    changes = record_changes(stored, after)
    assert list(changes.changed) == [f"{book.loc[3, 'source_system']}:{book.loc[3, 'client_id']}"]
    assert changes.removed.empty
