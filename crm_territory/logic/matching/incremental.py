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

So:

* the *dirty* records are the records added or changed since the last run, the records holding a name word whose
  "established" status changed, and the records of pairs a human decided (their matcher row is not stored). Every
  pair with a dirty record is blocked and scored again: the record with every other member of its blocks;
* a block that crossed ``max_block_size`` (it is skipped, or chained for an exact name, above it), or a too-large
  exact-name block a dirty record or a previous version sits in (a chain re-links around a record), changes every
  pair within it: its members are *touched*, and every pair of two touched records is scored again;
* an exact value whose points moved (a new ``gmail.com`` holder changes every holder's share): the pairs of two of
  its holders are scored again (their blocks did not change);
* every other pair keeps its row of the last run's ``client_matches``: it shares only blocks that kept their pairs,
  between two records that did not change, under the same model.

Pairs scored again are blocked from the whole book's blocks, over every pass, so ``blocked_by`` (the first pass
that pairs them) is the full run's.

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

from crm_territory.logic.matching.blocking import (
    EXACT_NAME_KEYS,
    ONE_EDIT_PASS,
    BlockingKey,
    BlockingPass,
    blocking_keys,
    one_edit_key,
    pairs_within_blocks,
)
from crm_territory.logic.matching.client_dim import latest_versions, record_keys
from crm_territory.logic.matching.fields import FieldEvidence
from crm_territory.logic.matching.names import split_first_word
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

    Compared column by column, aligned by record key (a missing value equals a missing value however it is
    spelled, so that a table read back from storage compares equal to the frame that was written); a value of
    another type (text against a number) counts as a change, which costs only a record scored again."""
    before, now = latest_versions(previous_raw), latest_versions(current_raw)
    content = [c for c in now.columns if c in before.columns and c not in BOOKKEEPING]
    old_keys = pd.Index(record_keys(before["source_system"].astype(str), before["client_id"].astype(str)))
    new_keys = pd.Index(record_keys(now["source_system"].astype(str), now["client_id"].astype(str)))
    at = old_keys.get_indexer(new_keys)
    differs = at < 0
    where = np.maximum(at, 0)
    for column in content:
        x = now[column].to_numpy(dtype=object)
        y = before[column].to_numpy(dtype=object)[where]
        missing_x, missing_y = pd.isna(x), pd.isna(y)
        same = (missing_x & missing_y) | (~missing_x & ~missing_y & (x == y))
        differs |= ~same
    changed = new_keys[differs]
    removed = old_keys[~old_keys.isin(new_keys)]
    keys = record_keys(previous_raw["source_system"].astype(str), previous_raw["client_id"].astype(str))
    return RecordChanges(changed, removed, previous_raw[keys.isin(changed.union(removed)).to_numpy()])


@dataclass(frozen=True)
class IncrementalBasis:
    """What the last published run left that an incremental resolution starts from, with the changes since."""

    matches: pd.DataFrame  # its client_matches
    changes: RecordChanges
    before_features: pd.DataFrame  # match features (``resolve.match_features``) of ``changes.before``'s latest versions
    previous_records: int  # records in the last run's book


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
    # a word's status moves only if its count moved, or if it sits between the two books' sector-word thresholds
    low, high = sorted((generic_before, spellings.generic))
    between = counts_now.index[((counts_now >= low) & (counts_now <= high + 1)).to_numpy()]
    words = pd.Index(delta.index).append(between).unique()
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


def blocks_around(
    features: pd.DataFrame, before: pd.DataFrame, seeds: np.ndarray, passes: tuple[BlockingPass, ...]
) -> dict[str, BlockingKey]:
    """The blocking keys ``pairs_again`` needs: over the current book's ``features`` (positions < n), then the previous
    versions ``before`` (positions >= n), in the order of ``passes``.

    Every pass is keyed over every record, except the first word one edit apart, the costliest by far (nine
    variants a record): its key is (a variant of the first word, the other words), so only records whose other
    words are those of a ``seeds`` record (over both parts), and whose first word shares a letter among its first two
    with the seed's, can share a block with one. They alone are keyed, and every block holding a seed is still
    whole, its size the book's."""
    columns = [c for c in features.columns if c in before.columns]
    both = pd.DataFrame(
        {c: np.concatenate([features[c].to_numpy(dtype=object), before[c].to_numpy(dtype=object)]) for c in columns}
    )
    keys = blocking_keys(both["name"], both, tuple(p for p in passes if p.name != ONE_EDIT_PASS))
    if not any(p.name == ONE_EDIT_PASS for p in passes):
        return keys
    words, rest = split_first_word(both["name"])
    rest = rest.fill_null("")
    # Two first words sharing a deletion variant share a letter among their first two (the variant's first letter is
    # the first or the second of each), and the other words must be equal: only such records can meet a seed.
    other = pc.dictionary_encode(rest).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    letters = pc.dictionary_encode(pa.chunked_array([pc.utf8_slice_codeunits(words, 0, 1), pc.utf8_slice_codeunits(words, 1, 2)]))
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in letters.chunks]).astype(np.int64)
    first, second = codes[: len(other)], codes[len(other) :]
    width = int(codes.max(initial=0)) + 1
    meet = np.unique(np.concatenate([other[seeds] * width + first[seeds], other[seeds] * width + second[seeds]]))
    near = np.flatnonzero(np.isin(other * width + first, meet) | np.isin(other * width + second, meet))
    key = one_edit_key(pc.take(words, near), pc.take(rest, near))
    keys[ONE_EDIT_PASS] = BlockingKey(near[key.records], key.blocks, key.describe)
    order = [p.name for p in passes if p.name in keys]
    return {name: keys[name] for name in order}


@dataclass(frozen=True)
class PairsAgain:
    """The pairs scored again (positions, a < b, sorted by (a, b)), the first key that pairs each, and the touched records."""

    a: np.ndarray
    b: np.ndarray
    blocked_by: np.ndarray
    pairs_by_key: dict[str, int]
    touched: np.ndarray  # per record: in a block whose every pair changed


def pairs_again(
    keys: Mapping[str, BlockingKey],
    n: int,
    changed: np.ndarray,
    dirty: np.ndarray,
    holders: list[np.ndarray],
    max_block_size: int,
) -> PairsAgain:
    """The candidate pairs to score again, as ``blocking.candidate_pairs`` finds them over the whole book.

    ``keys``: blocking keys over the current book (positions < n) followed by the previous versions of changed and
    removed records (positions >= n), so that a block's size before the changes is known. Three kinds of pairs:

    * a dirty record with every other member of its blocks within ``max_block_size`` (not every pair of those
      blocks: the others kept their pairs);
    * every pair within a block that crossed the limit (it is skipped, or chained for an exact name, above it), or
      within a too-large exact-name block a changed or dirty record sits in (a chain re-links around a record):
      their members are the *touched* records;
    * every pair of two records in one of ``holders`` (the holders of an exact value whose points moved).

    Each key's blocks are grouped once, by hashing (``pd.factorize``), not sorting: a million records make nine
    million one-edit variants. The pairs found are then labelled with the first key, over every key, that pairs them.
    """
    touched = np.zeros(n, dtype=bool)
    per_key: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # (key, records, block of each, block sizes)
    for key_name, key in keys.items():
        current = key.records < n
        inverse, uniques = pd.factorize(key.blocks)
        count = len(uniques)
        after = np.bincount(inverse[current], minlength=count)
        came = np.zeros(len(key.records), dtype=bool)
        came[current] = changed[key.records[current]]
        went = ~current
        before = after - np.bincount(inverse[came], minlength=count) + np.bincount(inverse[went], minlength=count)
        seen = came | went
        seen[current] |= dirty[key.records[current]]
        with_seed = np.bincount(inverse[seen], minlength=count) > 0
        too_large = (before > max_block_size) | (after > max_block_size)
        whole = with_seed & ((before > max_block_size) != (after > max_block_size))
        if key_name in EXACT_NAME_KEYS:
            whole |= with_seed & too_large
        touched[key.records[whole[inverse] & current]] = True
        per_key.append((key_name, key.records[current], inverse[current], after))
    groups = [g for g in (touched, *holders) if g.any()]

    codes, sources, found = [], [], {}
    for index, (key_name, records, inverse, sizes) in enumerate(per_key):
        parts = [_anchor_pairs(records, inverse, sizes, n, dirty, max_block_size)]
        for chosen in groups:
            picked = chosen[records]
            if not picked.any():
                continue
            picked_per_block = np.bincount(inverse[picked], minlength=len(sizes))
            take = picked & ((sizes <= max_block_size) & (picked_per_block >= 2))[inverse]
            a, b, _, _ = pairs_within_blocks(inverse[take], records[take], max_block_size)
            parts.append(a * n + b)
            if key_name in EXACT_NAME_KEYS:
                # chained in record order over the whole block: the block's every row, in the book's order
                take = ((sizes > max_block_size) & (picked_per_block >= 2))[inverse]
                la, lb, _, _ = pairs_within_blocks(inverse[take], records[take], max_block_size, chain_large=True)
                both = chosen[la] & chosen[lb]
                parts.append(la[both] * n + lb[both])
        code = np.unique(np.concatenate(parts))
        found[key_name] = len(code)
        codes.append(code)
        sources.append(np.full(len(code), index, dtype=np.int8))
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    source = np.concatenate(sources) if sources else np.zeros(0, np.int8)
    code, first = np.unique(code, return_index=True)  # the earliest key in the order given, as candidate_pairs
    names = np.array(list(keys), dtype=object)
    blocked_by = names[source[first]] if len(code) else np.zeros(0, object)
    return PairsAgain(code // max(n, 1), code % max(n, 1), blocked_by, found, touched)


def _anchor_pairs(
    records: np.ndarray, inverse: np.ndarray, sizes: np.ndarray, n: int, anchors: np.ndarray, max_block_size: int
) -> np.ndarray:
    """Codes (a * n + b) of one key's pairs with a record in ``anchors``, over its blocks within ``max_block_size``:
    each anchor with every other member of its blocks. Only the rows of blocks holding an anchor are sorted."""
    anchored = np.zeros(len(sizes), dtype=bool)
    anchored[inverse[anchors[records]]] = True
    anchored &= (sizes >= 2) & (sizes <= max_block_size)
    rows = np.flatnonzero(anchored[inverse])
    if not len(rows):
        return np.zeros(0, np.int64)
    order = rows[np.argsort(inverse[rows], kind="stable")]
    members, block = records[order], inverse[order]
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    span_of = np.diff(np.r_[starts, len(block)])
    group = np.repeat(np.arange(len(starts)), span_of)
    at = np.flatnonzero(anchors[members])
    span = span_of[group[at]]
    offset = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
    partner = members[np.repeat(starts[group[at]], span) + offset]
    anchor = np.repeat(members[at], span)
    other = partner != anchor
    a, b = np.minimum(anchor[other], partner[other]), np.maximum(anchor[other], partner[other])
    return a * n + b


def kept_rows(previous_matches: pd.DataFrame, position: pd.Series, groups: list[np.ndarray], anchors: np.ndarray) -> pd.DataFrame:
    """The last run's matcher rows whose pair is not scored again: both records still in the book, neither in
    ``anchors`` (the dirty records) and not both in one of ``groups`` (the touched records, the holders of a value
    whose points changed)."""
    matcher = previous_matches[previous_matches["decided_by"] == "matcher"]
    where = pd.Index(position.index)
    a = where.get_indexer(matcher["record_a"].to_numpy(dtype=object))
    b = where.get_indexer(matcher["record_b"].to_numpy(dtype=object))
    present = (a >= 0) & (b >= 0)
    a_at = np.where(present, position.to_numpy()[np.maximum(a, 0)], 0)
    b_at = np.where(present, position.to_numpy()[np.maximum(b, 0)], 0)
    keep = present & ~anchors[a_at] & ~anchors[b_at]
    for chosen in groups:
        keep &= ~(chosen[a_at] & chosen[b_at])
    out = matcher[keep].drop(columns=[c for c in SCORED_COLUMNS_EXCLUDED if c in matcher.columns])
    low, high = np.minimum(a_at[keep], b_at[keep]), np.maximum(a_at[keep], b_at[keep])
    return out.assign(a=low, b=high).reset_index(drop=True)
