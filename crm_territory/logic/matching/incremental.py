"""Incremental entity resolution: re-block and re-score only the pairs a batch of changed records can affect.

A full resolution compares every candidate pair of the book. After a change-feed batch of a few records,
almost every pair is the pair the last run scored: same two records, same blocks, same model. This module
finds the ones that are not, and ``resolve`` scores only those, keeping the last run's ``client_matches``
rows for the others. Clustering and stable keys still run over the whole book: they are cheap and global.

The result is the full run's exactly (the property test ``test_incremental_resolution`` compares them table by
table), because a pair's outcome depends only on

* the two records' match features;
* the blocks the two records share, and each block's size (a block over ``max_block_size`` is skipped or,
  for an exact name, chained record to record);
* the match model, which carries its own statistics once reused (``model.py``: u, the records having each
  field), except two measured on the whole book: how many records hold each exact value of an optional field
  (an exact agreement's points) and each name word (whether two spellings are both "established").

So the *dirty* records are: the records added or changed since the last run, the records holding an exact
value whose points changed or a word whose "established" status changed, and the records of pairs a human
decided (their matcher row is not stored). The *touched* blocks are the blocks of every dirty record and of
the previous version of every changed or removed record. Every pair both of whose records sit in touched
blocks is blocked and scored again, from the whole book's blocks; every other pair is kept. A pair with a
record outside the touched blocks shares only untouched blocks, between two records that did not change: its
existence, its ``blocked_by`` and its score are the last run's.

When the match model is re-estimated (the comparisons, the fields or their coverage changed), every pair's
points move: ``resolve`` then runs in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_territory.logic.matching.blocking import EXACT_NAME_KEYS, BlockingKey, pairs_within_blocks
from crm_territory.logic.matching.client_dim import latest_versions, record_keys
from crm_territory.logic.matching.fields import FieldEvidence
from crm_territory.logic.matching.scoring import (
    GENERIC_WORD_SHARE,
    MIN_GENERIC_WORD_RECORDS,
    WordCounts,
)

# raw_clients columns that say where and when a row came from, not what the record says: a record re-sent
# unchanged in a new drop is not a change
BOOKKEEPING = ("source_file", "source_row", "source_page", "source_modified_at", "ingested_at", "last_modified_at")

# the columns of a client_matches row that are the matcher's verdict on the pair (kept for an untouched pair)
SCORED_COLUMNS_EXCLUDED = ("record_a", "record_b", "client_name_a", "client_name_b", "merged", "client_key_a", "client_key_b")


def matcher_code_version() -> str:
    """A digest of the code that turns raw rows into match results (matching and reference canonicalisation): a run
    under other code than the published tables' resolves in full rather than mixing two versions' pairs."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted([*(package / "matching").glob("*.py"), *(package / "reference").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class RecordChanges:
    """Which records differ between two raw_clients (their latest versions), by record key."""

    changed: pd.Index  # record keys new or changed in the current book
    removed: pd.Index  # record keys of the previous book no longer in the current one
    before: pd.DataFrame  # raw_clients rows (every version) of the previous book's changed and removed records

    @property
    def count(self) -> int:
        return len(self.changed) + len(self.removed)


def record_changes(previous_raw: pd.DataFrame, current_raw: pd.DataFrame) -> RecordChanges:
    """The records whose latest version differs in content (bookkeeping columns aside), was added or was removed.

    Values are compared as text, so that a table read back from storage compares equal to the frame that was
    written (a missing value is missing whichever way it is spelled)."""
    before, now = latest_versions(previous_raw), latest_versions(current_raw)
    content = [c for c in now.columns if c in before.columns and c not in BOOKKEEPING]

    def digests(latest: pd.DataFrame) -> pd.Series:
        text = pd.DataFrame({c: latest[c].astype("string") for c in content})
        keys = record_keys(latest["source_system"].astype(str), latest["client_id"].astype(str))
        return pd.Series(pd.util.hash_pandas_object(text, index=False).to_numpy(), index=keys.to_numpy())

    old, new = digests(before), digests(now)
    known = old.reindex(new.index)
    changed = new.index[known.isna().to_numpy() | (known.to_numpy() != new.to_numpy())]
    removed = old.index[~old.index.isin(new.index)]
    keys = record_keys(previous_raw["source_system"].astype(str), previous_raw["client_id"].astype(str))
    return RecordChanges(pd.Index(changed), pd.Index(removed), previous_raw[keys.isin(changed.union(removed)).to_numpy()])


@dataclass(frozen=True)
class IncrementalBasis:
    """What the last published run left that an incremental resolution starts from, with the changes since."""

    matches: pd.DataFrame  # its client_matches
    changes: RecordChanges
    before_features: pd.DataFrame  # match features (``resolve.match_features``) of ``changes.before``'s latest versions
    before_keys: np.ndarray  # their record keys, lining up with before_features
    previous_records: int  # records in the last run's book


@dataclass(frozen=True)
class Rescoring:
    """The plan: which records' pairs are scored again, and which of the last run's matcher rows are kept."""

    a: np.ndarray  # the pairs to score again (positions, a < b), sorted by (a, b)
    b: np.ndarray
    blocked_by: np.ndarray
    pairs_by_key: dict[str, int]
    kept: pd.DataFrame  # the last run's matcher rows kept, with their positions in columns a and b
    dirty: int  # records dirty (changed, or holding a value or word whose weight changed, or human-decided)
    touched: int  # records in touched blocks (every pair among them scored again)


def dirty_records(
    record_key: np.ndarray,
    names: np.ndarray,
    evidence: FieldEvidence | None,
    spellings: WordCounts,
    basis: IncrementalBasis,
    decided: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per record of the current book: whether its pairs must be scored again (see the module's docstring); and the
    groups of records holding an exact value whose points changed (their pairs within the group are scored again).

    ``evidence``: the optional fields under the model in force (its share denominators); ``decided``: positions
    of records in a human decision, now or in the last run's client_matches."""
    changed = pd.Index(basis.changes.changed).get_indexer(record_key) >= 0
    changed_now = np.flatnonzero(changed)
    dirty = changed.copy()
    dirty[decided] = True

    # names: a word whose "established" status differs between the last book and this one
    counts_now = spellings.counts
    delta = _word_counts(names[changed_now]).sub(_word_counts(basis.before_features["name"].to_numpy(dtype=object)), fill_value=0)
    delta = delta[delta != 0]
    counts_before = counts_now.sub(delta, fill_value=0)
    counts_before = counts_before[counts_before > 0]
    generic_before = max(MIN_GENERIC_WORD_RECORDS, GENERIC_WORD_SHARE * basis.previous_records)
    words = counts_now.index.union(counts_before.index)
    flipped = words[
        WordCounts(counts_now, spellings.generic).established(words.to_numpy())
        != WordCounts(counts_before, generic_before).established(words.to_numpy())
    ]
    if len(flipped):
        dirty |= _holds_any_word(names, flipped)

    # optional fields: an exact value whose points (its records over the model's denominator) changed. Only the pairs
    # agreeing on it move, and their blocks do not: its holders are a group whose pairs among themselves are scored
    # again, rather than dirty records (a new gmail.com address must not touch every block of 100,000 holders).
    groups: list[np.ndarray] = []
    if evidence is not None:
        for f in evidence.present:
            values = pd.Series(evidence.values[f].to_numpy(dtype=object))
            before = basis.before_features[f] if f in basis.before_features else pd.Series(dtype=object)
            moved = values.iloc[changed_now].value_counts().sub(before.value_counts(), fill_value=0)
            moved = moved[moved != 0]
            if moved.empty:
                continue
            held_now = values.value_counts().reindex(moved.index, fill_value=0).to_numpy(dtype=float)
            held_before = held_now - moved.to_numpy(dtype=float)
            m_exact, having = evidence.model.m[f].exact, float(evidence.denominator[f])
            differ = moved.index[
                _exact_points(m_exact, held_now, having, evidence.model)
                != _exact_points(m_exact, held_before, having, evidence.model)
            ]
            if len(differ):
                groups.append(values.isin(differ).to_numpy())
    return dirty, groups


def _exact_points(m_exact: float, held: np.ndarray, having: float, model) -> np.ndarray:
    """The points of an exact agreement on a value held by ``held`` records, as ``FieldEvidence.compare`` rounds them
    (a value no record holds gets NaN: it differs from any points, and its records, if any, are dirty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bits = np.minimum(np.log2(m_exact / (held / having)), model.max_bits)
    return np.where(held > 0, np.round(bits * model.points_per_bit, 2), np.nan)


def _word_counts(names: np.ndarray) -> pd.Series:
    if not len(names):
        return pd.Series(dtype="int64")
    return WordCounts.of(names).counts


def _holds_any_word(names: np.ndarray, words: pd.Index) -> np.ndarray:
    lists = pc.split_pattern(pa.array(names, pa.string(), from_pandas=True), " ")
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    hit = pc.is_in(flat, value_set=pa.array(words.to_numpy(dtype=object), pa.string())).to_numpy(zero_copy_only=False)
    out = np.zeros(len(names), dtype=bool)
    out[parent[hit]] = True
    return out


def touched_records(keys: Mapping[str, BlockingKey], n: int, dirty: np.ndarray) -> np.ndarray:
    """Per record of the current book (positions < n): whether it sits in a block of a dirty record or of a previous
    version (positions >= n in ``keys``: blocking keys over the current book followed by the previous versions)."""
    touched = dirty.copy()
    for key in keys.values():
        seeds = np.zeros(len(key.records), dtype=bool)
        current = key.records < n
        seeds[current] = dirty[key.records[current]]
        seeds[~current] = True
        blocks = np.unique(key.blocks[seeds])
        members = key.records[np.isin(key.blocks, blocks) & current]
        touched[members] = True
    return touched


def pairs_among(
    keys: Mapping[str, BlockingKey], n: int, groups: list[np.ndarray], max_block_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """The candidate pairs (as ``blocking.candidate_pairs`` finds them over the whole book) both of whose records
    are in one of ``groups`` (masks over the book), with the first key that pairs them. Block sizes are the whole
    book's: a block too large is skipped, or chained in record order for an exact name, exactly as in a full run."""
    codes, sources, found = [], [], {}
    for index, (key_name, key) in enumerate(keys.items()):
        current = key.records < n
        records, blocks = key.records[current], key.blocks[current]
        _, inverse, sizes = np.unique(blocks, return_inverse=True, return_counts=True)
        found_here = []
        for chosen in groups:
            picked = chosen[records]
            picked_per_block = np.bincount(inverse[picked], minlength=len(sizes))
            take = picked & ((sizes <= max_block_size) & (picked_per_block >= 2))[inverse]
            a, b, _, _ = pairs_within_blocks(blocks[take], records[take], max_block_size)
            found_here.append(a * n + b)
            if key_name in EXACT_NAME_KEYS:
                take = ((sizes > max_block_size) & (picked_per_block >= 2))[inverse]
                la, lb, _, _ = pairs_within_blocks(blocks[take], records[take], max_block_size, chain_large=True)
                both = chosen[la] & chosen[lb]
                found_here.append(la[both] * n + lb[both])
        code = np.unique(np.concatenate(found_here)) if found_here else np.zeros(0, np.int64)
        found[key_name] = len(code)
        codes.append(code)
        sources.append(np.full(len(code), index, dtype=np.int8))
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    source = np.concatenate(sources) if sources else np.zeros(0, np.int8)
    code, first = np.unique(code, return_index=True)
    names = np.array(list(keys), dtype=object)
    return code // max(n, 1), code % max(n, 1), names[source[first]] if len(code) else np.zeros(0, object), found


def kept_rows(previous_matches: pd.DataFrame, position: pd.Series, groups: list[np.ndarray]) -> pd.DataFrame:
    """The last run's matcher rows whose pair is not scored again: both records still in the book, and not both in
    one of ``groups`` (the touched records, the holders of a value whose points changed)."""
    matcher = previous_matches[previous_matches["decided_by"] == "matcher"]
    where = pd.Index(position.index)
    a = where.get_indexer(matcher["record_a"].to_numpy(dtype=object))
    b = where.get_indexer(matcher["record_b"].to_numpy(dtype=object))
    present = (a >= 0) & (b >= 0)
    a_at = np.where(present, position.to_numpy()[np.maximum(a, 0)], 0)
    b_at = np.where(present, position.to_numpy()[np.maximum(b, 0)], 0)
    keep = present.copy()
    for chosen in groups:
        keep &= ~(chosen[a_at] & chosen[b_at])
    out = matcher[keep].drop(columns=[c for c in SCORED_COLUMNS_EXCLUDED if c in matcher.columns])
    low, high = np.minimum(a_at[keep], b_at[keep]), np.maximum(a_at[keep], b_at[keep])
    return out.assign(a=low, b=high).reset_index(drop=True)
