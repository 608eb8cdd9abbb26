"""Entity resolution: which source records are one organisation, and under which stable client_key.

    records --normalise names--> blocking keys --candidate pairs--> scores --matches + human decisions-->
    clusters (chain guard) --previous client_xref--> stable client_keys

Each step is its own module (names, blocking, scoring, clustering, match_decisions, client_keys);
this one runs them in order and writes what they decided in the shapes of ``client_xref`` (one row
per record: its client_key and how it got there), ``client_matches`` (the scored pairs worth a
look: matches, possible matches, human decisions) and ``client_key_retirements``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_territory.logic.matching.blocking import CandidatePairs, blocking_keys, candidate_pairs
from crm_territory.logic.matching.client_keys import assign_client_keys
from crm_territory.logic.matching.clustering import ContradictoryDecisions, cluster_records, components
from crm_territory.logic.matching.comparisons import DEFAULT_COMPARISONS, Comparisons
from crm_territory.logic.matching.decisions import CANNOT_LINK, MUST_LINK, MatchDecisions, MatchDecisionsError
from crm_territory.logic.matching.fields import FIELDS, FieldModel
from crm_territory.logic.matching.incremental import (
    IncrementalBasis,
    RecordChanges,
    blocks_around,
    dirty_records,
    kept_rows,
    pairs_again,
)
from crm_territory.logic.matching.model import FittedModel, fit_model, pair_levels
from crm_territory.logic.matching.names import normalise_names
from crm_territory.logic.matching.scoring import (
    FIELD_WEIGHTS,
    MATCH,
    MATCH_SCORE,
    NO_MATCH,
    POSSIBLE,
    MatchFeatures,
    WordCounts,
    alike_score,
    reweigh,
    score_pairs,
)
from crm_territory.schemas import ClientKeyRetirements, ClientMatches, ClientXref, columns_of, empty_frame

ONLY_RECORD, MATCHED, HUMAN = "only record", "matched", "human decision"


# the most source records human must-links may join into one client unless the run accepts more
MAX_MUST_LINK_GROUP = 10
# The most of the book human must-links may merge into other records, all groups together, unless the
# run accepts more: many small groups can fold the book as surely as one long chain (a join gone wrong
# pairing record i with record i+1 merges half of it in groups of two, each within the group limit).
# The matcher itself merges ~4% of the demo book; human decisions correct its few misses, a small part
# of that. The floor keeps a small book's handful of decisions (tests, a pilot) from tripping it.
MAX_MUST_LINK_SHARE = 0.05
MUST_LINK_SHARE_FLOOR = 50


@dataclass(frozen=True)
class Resolution:
    xref: pd.DataFrame  # ClientXref
    matches: pd.DataFrame  # ClientMatches
    retirements: pd.DataFrame  # ClientKeyRetirements: every key ever retired, this run's included
    stats: dict[str, Any] = field(default_factory=dict)
    decisions_not_applied: pd.DataFrame | None = None  # decisions naming records not in the book
    model: pd.DataFrame | None = None  # MatchModel: the model in force, one row per field and level (empty: no such field)
    model_re_estimated: bool = False  # whether this run estimated m (False: reused, or no optional field)
    model_reason: str = "no optional field (tax id, date of birth, postcode, domain, phone, address) in the book"


def match_features(records: pd.DataFrame) -> pd.DataFrame:
    """What matching compares, per record: normalised name and words, region, parent, advisor domain, and the
    optional fields ``client_records`` normalised (tax_id, date_of_birth, ...) when the records have them."""
    names = normalise_names(records["client_name"])
    parents = normalise_names(records["parent_org"])
    return pd.DataFrame(
        {
            "name": names.name,
            "unmatchable": names.unmatchable,
            "region": records["region"],
            "parent_org": parents.name,
            "advisor_email": records["primary_advisor_email"],
            "advisor_domain": _domain(records["primary_advisor_email"]),
            **{f: records[f] for f in FIELDS if f in records.columns},
        },
        index=records.index,
    )


def _domain(emails: pd.Series) -> pd.Series:
    """The part after "@" of valid (lower-cased) e-mails; missing stays missing. One string object per domain, not per row."""
    text = pa.array(emails.to_numpy(dtype=object), pa.string(), from_pandas=True)
    domain = pc.dictionary_encode(pc.list_element(pc.split_pattern(pc.fill_null(text, "@"), "@", max_splits=1), 1))
    out = domain.dictionary.to_numpy(zero_copy_only=False).astype(object)[domain.indices.to_numpy(zero_copy_only=False)]
    out[emails.isna().to_numpy()] = None
    return pd.Series(out, index=emails.index, dtype=object)


def resolve(
    records: pd.DataFrame,
    decisions: MatchDecisions,
    previous_xref: pd.DataFrame | None,
    previous_retirements: pd.DataFrame | None,
    now: pd.Timestamp,
    log: Callable[[str], None] = lambda message: None,
    max_must_link_group: int | None = MAX_MUST_LINK_GROUP,
    max_must_link_share: float | None = MAX_MUST_LINK_SHARE,
    comparisons: Comparisons = DEFAULT_COMPARISONS,
    previous_model: pd.DataFrame | None = None,
    incremental: IncrementalBasis | None = None,
) -> Resolution:
    """Resolve ``records`` (``client_records``: one row per source record, positions 0..n-1).

    ``max_must_link_group``: the most records human must-links may join into one client (None: no limit).
    ``max_must_link_share``: the largest share of the records human must-links may merge into another
    record, all groups together, with a floor of ``MUST_LINK_SHARE_FLOOR`` records (None: no limit).
    ``comparisons``: the optional fields compared and their priors (data/matching/comparisons.yaml).
    ``previous_model``: the stored match_model, reused unless the book or the comparisons changed enough.
    ``incremental``: the last run's client_matches and the records changed since (``incremental.py``): only the
    pairs those changes can affect are blocked and scored again, with the same result as a full resolution. A run
    that re-estimates the match model resolves in full; ``stats["mode"]`` says which happened, and why.
    """
    if not (isinstance(records.index, pd.RangeIndex) and records.index.start == 0 and records.index.step == 1):
        records = records.reset_index(drop=True)
    if not records["record_key"].is_monotonic_increasing:
        records = records.sort_values("record_key", kind="stable").reset_index(drop=True)  # positions break ties in key order
    n = len(records)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.perf_counter() - clock, 2)
        log(f"entity resolution: {step} done in {timings[step]:.1f} s")
        clock = time.perf_counter()

    features = match_features(records)
    # a field the comparisons file turns off is neither blocked on nor compared: as if no source gave it
    features = features.drop(columns=[f for f in FIELDS if f in features.columns and f not in comparisons.fields])
    lap("normalise")
    priors = FieldModel({f: comparisons.priors[f] for f in comparisons.fields}, comparisons.points_per_bit, comparisons.max_bits)
    matcher = dataclasses.replace(
        MatchFeatures.from_frame(features, priors), spellings=WordCounts.of(features["name"].to_numpy(dtype=object))
    )
    position = pd.Series(np.arange(n), index=records["record_key"].to_numpy())
    applied, not_applied = _decisions_on(decisions, position)
    fields_present = matcher.fields is not None and bool(matcher.fields.present)
    must_a, must_b = _pairs(applied, MUST_LINK)
    must_a, must_b = np.minimum(must_a, must_b), np.maximum(must_a, must_b)
    must_levels = matcher.fields.levels(must_a, must_b) if fields_present and matcher.fields else None
    decided = pair_levels(matcher, must_levels, score_pairs(matcher, must_a, must_b, must_levels)).levels

    mode, step = "full", None
    if incremental is not None:
        step, mode = _incremental_pairs(
            records, features, matcher, applied, decided, incremental, comparisons, previous_model, now
        )
    if step is None:
        candidates = candidate_pairs(
            blocking_keys(features["name"], features, comparisons.blocking_passes), n, comparisons.max_block_size
        )
        lap(f"blocking ({len(candidates):,} candidate pairs)")
        # the optional fields' levels are needed by the model and by the points: computed once, used twice
        levels = matcher.fields.levels(candidates.a, candidates.b) if fields_present and matcher.fields else None
        scored = score_pairs(matcher, candidates.a, candidates.b, levels)  # the name compared once, here
        lap("scoring")
        fitted = fit_model(pair_levels(matcher, levels, scored), comparisons, previous_model, now, decided)
        matcher = _under(matcher, fitted)
        scored = reweigh(scored, matcher, candidates.a, candidates.b, levels)
        lap("match model (" + ("estimated" if fitted.re_estimated else "reused") + ") and points")
    else:
        candidates, scored, fitted, matcher = step.candidates, step.scored, step.fitted, step.matcher
        lap(f"incremental blocking and scoring ({step.stats['pairs_scored_again']:,} pairs scored again)")

    previous = None
    previous_clusters = None
    if previous_xref is not None:
        previous = previous_xref.assign(record_key=previous_xref["source_system"] + ":" + previous_xref["source_record_id"])
        at = pd.Index(previous["record_key"]).get_indexer(records["record_key"].to_numpy(dtype=object))
        previous_clusters = np.where(at >= 0, pd.factorize(previous["client_key"])[0][at], -1)

    if max_must_link_group is not None or max_must_link_share is not None:
        _refuse_large_must_link_groups(
            applied, records["record_key"].to_numpy(dtype=object), decisions.source, max_must_link_group, max_must_link_share
        )
    is_match = (scored["decision"] == MATCH).to_numpy()
    try:
        clusters = cluster_records(
            n,
            (candidates.a[is_match], candidates.b[is_match], scored["score"].to_numpy()[is_match]),
            _pairs(applied, MUST_LINK),
            _pairs(applied, CANNOT_LINK),
            lambda a, b: alike_score(score_pairs(matcher, a, b)),
            previous=previous_clusters,
        )
    except ContradictoryDecisions as contradiction:
        raise _explain(contradiction, applied, records["record_key"].to_numpy(dtype=object), decisions.source) from contradiction
    lap("clustering")
    retired_before = previous_retirements if previous_retirements is not None else empty_frame(ClientKeyRetirements)
    ever_issued = set(retired_before["retired_client_key"]) | set(retired_before["client_key"])
    if previous is not None:
        ever_issued |= set(previous["client_key"])
    keys = assign_client_keys(records["record_key"], clusters.labels, records["source_modified_at"], previous, ever_issued, now)
    lap("stable keys")

    xref = _xref(records, features, clusters.labels, keys, applied, position, previous, now)
    matches = _matches(records, candidates, scored, applied, matcher, position, clusters.labels, keys.client_key)
    retirements = pd.concat([retired_before, keys.retirements], ignore_index=True)[columns_of(ClientKeyRetirements)]
    retirements["retired_at"] = pd.to_datetime(retirements["retired_at"], utc=True).astype("datetime64[ns, UTC]")
    sizes = np.bincount(clusters.labels) if n else np.zeros(0, np.int64)
    stats = {
        "mode": mode,
        **(step.stats if step is not None else {}),
        "records": n,
        "clients": int(len(sizes)),
        "clients_with_several_records": int((sizes > 1).sum()),
        "records_merged_into_another": int(n - len(sizes)),
        "unmatchable_records": int(features["unmatchable"].notna().sum()),
        # in an incremental run: the pairs scored again (the others are the last run's)
        "candidate_pairs": len(candidates) if step is None else step.stats["pairs_scored_again"],
        "candidate_pairs_by_blocking_key": candidates.pairs_by_key,
        "blocks_skipped_as_too_common": int((candidates.skipped_blocks["handled"] == "skipped").sum()),
        "large_same_name_blocks_chained": int((candidates.skipped_blocks["handled"] == "chained").sum()),
        "matched_pairs": int(is_match.sum()),
        "possible_pairs_for_review": int((scored["decision"] == "possible").sum()),
        "clusters_split_by_chain_guard": clusters.split_by_guard,
        "linked_groups_too_large_to_verify": clusters.too_large_to_verify,
        "human_decisions_applied": int(len(applied)),
        "human_decisions_not_applied": int(len(not_applied)),
        "client_keys_retired_this_run": int(len(keys.retirements)),
        "seconds_by_step": timings,
    }
    return Resolution(xref, matches, retirements, stats, not_applied, fitted.table, fitted.re_estimated, fitted.reason)


def _explain(
    contradiction: ContradictoryDecisions, applied: pd.DataFrame, record_key: np.ndarray, source: str
) -> MatchDecisionsError:
    """The contradiction in the analyst's terms: the decisions file, its lines and the records."""
    musts = applied[applied["decision"] == MUST_LINK]
    group = components(len(record_key), musts["a"].to_numpy(dtype=np.int64), musts["b"].to_numpy(dtype=np.int64))
    problems = []
    for a, b in contradiction.pairs:
        cannot = applied[
            (applied["decision"] == CANNOT_LINK)
            & (((applied["a"] == a) & (applied["b"] == b)) | ((applied["a"] == b) & (applied["b"] == a)))
        ]
        chain = musts[group[musts["a"].to_numpy(dtype=np.int64)] == group[a]]
        problems.append(
            f"line {int(cannot['line'].iloc[0])}: cannot_link {record_key[a]} and {record_key[b]}, but must_link lines "
            f"{', '.join(str(int(x)) for x in sorted(chain['line']))} put them in one client"
        )
    return MatchDecisionsError(f"{source}: contradictory decisions: " + "; ".join(problems) + "; remove one of them")


def _refuse_large_must_link_groups(
    applied: pd.DataFrame, record_key: np.ndarray, source: str, limit: int | None, share: float | None
) -> None:
    """Stop before clustering when must-link lines chain more than ``limit`` records into one client,
    or merge more than ``share`` of the book (at least ``MUST_LINK_SHARE_FLOOR`` records) in all.

    Must-links are always honoured and the loss guard ignores merges on purpose, so a chain of
    decisions (a pasted column, a script gone wrong) could fold a share of the book into one client
    with every check passing: the probe's 999 lines merged 927 clients. A real human decision joins
    a handful of records, and all of them together a small part of the book.
    """
    musts = applied[applied["decision"] == MUST_LINK]
    n = len(record_key)
    most_merged = max(MUST_LINK_SHARE_FLOOR, int(share * n)) if share is not None else None
    # k lines join at most k + 1 records into one client and merge at most k records in all
    if (limit is None or len(musts) < limit) and (most_merged is None or len(musts) <= most_merged):
        return
    a, b = musts["a"].to_numpy(dtype=np.int64), musts["b"].to_numpy(dtype=np.int64)
    group = components(n, a, b)
    sizes = np.bincount(group, minlength=n)
    lines_of = musts["line"].to_numpy()

    def describe(label: int) -> str:
        members = np.flatnonzero(group == label)
        lines = sorted(int(x) for x in lines_of[group[a] == label])
        shown = ", ".join(str(k) for k in record_key[members[:5]]) + (", ..." if len(members) > 5 else "")
        span = f"lines {lines[0]}-{lines[-1]}" if len(lines) > 3 else "lines " + ", ".join(map(str, lines))
        return f"{len(lines)} must_link lines ({span}) join {len(members):,} records into one client ({shown})"

    accept = (
        "Check those lines; if the merges are right, re-run with run config "
        "ops.client_xref.config.accept_large_must_link_groups: true"
    )
    too_big = np.flatnonzero(sizes > limit) if limit is not None else np.zeros(0, np.int64)
    if len(too_big):
        problems = [describe(label) for label in too_big[np.argsort(-sizes[too_big], kind="stable")][:3]]
        raise MatchDecisionsError(
            f"{source}: " + "; ".join(problems) + f"; a group of must-links may join at most {limit} records. " + accept
        )
    linked = sizes[sizes > 1]
    merged = int((linked - 1).sum())  # records that stop being a client of their own
    if most_merged is not None and merged > most_merged:
        largest = np.flatnonzero(sizes > 1)[np.argsort(-linked, kind="stable")][:3]
        raise MatchDecisionsError(
            f"{source}: must_link decisions would merge {merged:,} of the {n:,} records ({merged / n:.0%} of the book) "
            f"into other records, in {len(linked):,} groups (the largest: " + "; ".join(describe(g) for g in largest) + "); "
            f"must-links may merge at most {share:.0%} of the book (at least {MUST_LINK_SHARE_FLOOR} records: {most_merged:,} here). "
            "A join or a paste gone wrong? " + accept
        )


def _decisions_on(decisions: MatchDecisions, position: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    pairs = decisions.pairs
    if pairs.empty:
        return pairs.assign(a=pd.Series(dtype="int64"), b=pd.Series(dtype="int64")), pairs
    known = pairs["record_a"].isin(position.index) & pairs["record_b"].isin(position.index)
    applied = pairs[known].assign(a=lambda d: d["record_a"].map(position), b=lambda d: d["record_b"].map(position))
    return applied, pairs[~known]


def _pairs(applied: pd.DataFrame, decision: str) -> tuple[np.ndarray, np.ndarray]:
    chosen = applied[applied["decision"] == decision]
    return chosen["a"].to_numpy(dtype=np.int64), chosen["b"].to_numpy(dtype=np.int64)


def _xref(records, features, labels, keys, applied, position, previous, now) -> pd.DataFrame:
    sizes = np.bincount(labels)[labels]
    human = np.zeros(len(records), dtype=bool)
    linked = applied[applied["decision"] == MUST_LINK]
    human[linked["a"].to_numpy(dtype=np.int64)] = True
    human[linked["b"].to_numpy(dtype=np.int64)] = True
    first_seen = np.full(len(records), pd.Timestamp(now).value, dtype=np.int64)
    if previous is not None and len(previous):
        at = pd.Index(previous["record_key"]).get_indexer(records["record_key"].to_numpy(dtype=object))
        seen = pd.DatetimeIndex(pd.to_datetime(previous["first_seen_at"], utc=True)).asi8
        first_seen[at >= 0] = seen[at[at >= 0]]
    xref = pd.DataFrame(
        {
            "source_system": records["source_system"],
            "source_record_id": records["source_record_id"],
            "client_key": keys.client_key,
            "records_in_client": pd.array(sizes, dtype="Int64"),
            "linked_by": np.where(sizes == 1, ONLY_RECORD, np.where(human, HUMAN, MATCHED)).astype(object),
            "unmatchable_reason": features["unmatchable"],
            "client_key_issued_at": keys.client_key_issued_at,
            "first_seen_at": pd.to_datetime(first_seen, utc=True),
        }
    )
    # records arrive in record-key order and clusters are numbered by their first record: this keeps a
    # client's records together, clients in the order of their first record
    order = np.lexsort((np.arange(len(xref)), labels))
    return xref.iloc[order].reset_index(drop=True)[columns_of(ClientXref)]


def _matches(records, candidates, scored, applied, matcher, position, labels, client_key) -> pd.DataFrame:
    worth_a_look = (scored["decision"] != NO_MATCH).to_numpy()
    a, b = candidates.a[worth_a_look], candidates.b[worth_a_look]
    pairs = scored[worth_a_look].assign(blocked_by=candidates.blocked_by[worth_a_look], decided_by="matcher")
    if len(applied):
        ha, hb = applied["a"].to_numpy(dtype=np.int64), applied["b"].to_numpy(dtype=np.int64)
        low, high = np.minimum(ha, hb), np.maximum(ha, hb)
        human = score_pairs(matcher, low, high).assign(
            decision=applied["decision"].to_numpy(), blocked_by=None, decided_by="human"
        )
        # a human decision replaces the matcher's row for the same pair
        replaced = np.isin(a * len(records) + b, low * len(records) + high)
        a, b = np.concatenate([a[~replaced], low]), np.concatenate([b[~replaced], high])
        pairs = pd.concat([pairs[~replaced], human], ignore_index=True)
    if not len(a):
        return empty_frame(ClientMatches)
    name = records["client_name"].to_numpy(dtype=object)
    record_key = records["record_key"].to_numpy(dtype=object)
    out = pd.DataFrame(
        {
            "record_a": record_key[a],
            "record_b": record_key[b],
            "client_name_a": name[a],
            "client_name_b": name[b],
            **{
                c: pairs[c].to_numpy()
                for c in [
                    "name_score",
                    "name_difference",
                    "name_points",
                    *(f"{f}_{part}" for f in FIELD_WEIGHTS for part in ("agreement", "points")),
                    *(f"{f}_{part}" for f in FIELDS for part in ("level", "points")),
                    "field_points",
                    "score",
                    "decision",
                    "decided_by",
                    "blocked_by",
                ]
            },
            "merged": labels[a] == labels[b],
            "client_key_a": client_key[a],
            "client_key_b": client_key[b],
        }
    )
    # the review list first: possible matches nearest the match threshold (the ones a reviewer's answer most
    # likely changes), then the rest by record pair (a stable order, so that runs diff cleanly)
    possible = (out["decision"] == POSSIBLE).to_numpy()
    distance = np.where(possible, np.abs(out["score"].to_numpy(dtype=float) - MATCH_SCORE), np.inf)
    order = np.lexsort((out["record_b"].to_numpy(), out["record_a"].to_numpy(), distance, ~possible))
    return out.iloc[order].reset_index(drop=True)[columns_of(ClientMatches)]


def _under(matcher: MatchFeatures, fitted: FittedModel) -> MatchFeatures:
    """The matcher under the model in force: its m and CRM points, and a reused model's own statistics."""
    fields = matcher.fields
    if fields is not None and fields.present:
        fields = fields.with_model(fitted.model, fitted.u, fitted.records_with_field)
    return dataclasses.replace(matcher, fields=fields, weights=fitted.weights)


@dataclass(frozen=True)
class _IncrementalStep:
    candidates: CandidatePairs  # the pairs worth a look (kept and scored again), sorted by (a, b)
    scored: pd.DataFrame
    fitted: FittedModel
    matcher: MatchFeatures
    stats: dict[str, Any]


def _incremental_pairs(records, features, matcher, applied, decided, basis, comparisons, previous_model, now):
    """(the pairs worth a look, and the model, as a full resolution would find them; "incremental: ...") or
    (None, "full: why") when the run cannot be incremental."""
    empty = np.zeros(0, np.int64)
    no_levels = matcher.fields.levels(empty, empty) if matcher.fields is not None and matcher.fields.present else None
    fitted = fit_model(
        pair_levels(matcher, no_levels, score_pairs(matcher, empty, empty, no_levels)), comparisons, previous_model, now, decided
    )
    if fitted.re_estimated:
        return None, f"full: the match model is estimated again ({fitted.reason})"
    n = len(records)
    record_key = records["record_key"].to_numpy(dtype=object)
    fitted_matcher = _under(matcher, fitted)
    before = basis.before_features.drop(columns=[c for c in basis.before_features.columns if c not in features.columns])
    previous_human = basis.matches[basis.matches["decided_by"] == "human"]
    decided_keys = pd.Index(
        np.concatenate([previous_human["record_a"].to_numpy(dtype=object), previous_human["record_b"].to_numpy(dtype=object)])
    )
    decided_at = pd.Index(record_key).get_indexer(decided_keys)
    decided_positions = np.concatenate(
        [applied["a"].to_numpy(dtype=np.int64), applied["b"].to_numpy(dtype=np.int64), decided_at[decided_at >= 0]]
    )
    dirty, shared_values = dirty_records(
        record_key, features["name"].to_numpy(dtype=object), fitted_matcher.fields, matcher.spellings, basis, decided_positions
    )
    changed = pd.Index(basis.changes.changed).get_indexer(record_key) >= 0
    seeds = np.concatenate([dirty, np.ones(len(before), dtype=bool)])
    for holders in shared_values:
        seeds[:n] |= holders
    keys = blocks_around(features, before, seeds, comparisons.blocking_passes)
    again = pairs_again(keys, n, changed, dirty, shared_values, comparisons.max_block_size)
    a, b, blocked_by, found, touched = again.a, again.b, again.blocked_by, again.pairs_by_key, again.touched
    del keys
    levels = matcher.fields.levels(a, b) if matcher.fields is not None and matcher.fields.present else None
    scored = reweigh(score_pairs(matcher, a, b, levels), fitted_matcher, a, b, levels)
    worth = (scored["decision"] != NO_MATCH).to_numpy()
    position = pd.Series(np.arange(n), index=record_key)
    kept = kept_rows(basis.matches, position, [touched, *shared_values], dirty)
    columns = list(scored.columns)
    all_a = np.concatenate([a[worth], kept["a"].to_numpy(dtype=np.int64)])
    all_b = np.concatenate([b[worth], kept["b"].to_numpy(dtype=np.int64)])
    all_blocked = np.concatenate([blocked_by[worth], kept["blocked_by"].to_numpy(dtype=object)])
    both = pd.concat([scored[worth].reset_index(drop=True), kept[columns]], ignore_index=True)
    order = np.lexsort((all_b, all_a))
    candidates = CandidatePairs(
        all_a[order],
        all_b[order],
        all_blocked[order],
        pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "records" else object) for c in ["key_name", "key", "records", "handled"]}
        ),
        found,
    )
    stats = {
        "records_changed": len(basis.changes.changed),
        "records_removed": len(basis.changes.removed),
        "records_dirty": int(dirty.sum()),
        "records_in_touched_blocks": int(touched.sum()),
        "records_holding_a_value_whose_points_changed": int(np.logical_or.reduce(shared_values).sum()) if shared_values else 0,
        "pairs_scored_again": len(a),
        "pairs_kept": len(kept),
    }
    return _IncrementalStep(candidates, both.iloc[order].reset_index(drop=True), fitted, fitted_matcher, stats), (
        f"incremental: {len(basis.changes.changed):,} records changed, {len(basis.changes.removed):,} removed"
    )


def incremental_basis(
    previous_matches: pd.DataFrame, changes: RecordChanges, before_records: pd.DataFrame, previous_records: int
) -> IncrementalBasis:
    """The basis of an incremental resolution: the last run's client_matches, the records changed since, and the
    match features of their previous versions (``before_records``: ``client_records`` of ``changes.before``)."""
    return IncrementalBasis(
        matches=previous_matches,
        changes=changes,
        before_features=match_features(before_records).reset_index(drop=True),
        previous_records=previous_records,
    )
