"""Evaluate a rules file over the client book, vectorised: segment, territory, advisor pin, SECONDARY rows.

Why vectorised: the system this replaces evaluated rules row by row (about 60 s for a million
clients with one rule). Here every rule is evaluated once over all clients as a numpy boolean mask,
and each client picks the first matching rule with one ``argmax`` over the stacked masks, so the
cost grows with (rules x clients) in C, not in Python.

Column values are factorized once per column and shared by every rule: a text operator runs over
the distinct values (a region column has a handful) and is broadcast back through the codes.

Order of decisions, per client:

1. segmentation: the first matching tier (file order) gives the segment; with ``precedence: rules``
   it replaces the source's segment, with ``precedence: source`` it only fills a missing one;
2. territory: the first matching rule by (priority, file order), after clearing, for each
   exclusion, the rules that would put that client in the excluded territory (so the next match
   applies); ``assign: client`` only matches clients whose region and (derived) segment are known;
3. overrides: an override's territory beats every rule; its advisor is ``pinned_advisor``;
4. nothing matched: no target (the caller uses UNASSIGNED), ``assigned_by = "fallback"``;
5. SECONDARY: the parent's territory when a client's parent_org names another client placed
   elsewhere, and one row per matching overlay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import regex

from crm_territory.logic.rules.model import TEXT_OPERATORS, Condition, Rules, RulesError, Target, as_text

FALLBACK = "fallback"
PARENT_ORG = "parent_org"
OVERRIDE_PREFIX = "override:"
_NOT_ALNUM = "[^0-9a-z]+"  # canonical.alias_key's character class
REGEX_SECONDS = 2.0  # what one rule's regular expression may take over all the distinct values of its column
# what numpy makes of a bare None (a 0-d object array), spelled out: numpy's stubs do not take None as ArrayLike
_NONE = np.array(None, dtype=object)
_T = TypeVar("_T")

PLACEMENT_COLUMNS = ["client_key", "segment", "segment_rule", "target_region", "target_segment", "assigned_by", "pinned_advisor"]
SECONDARY_COLUMNS = ["client_key", "target_region", "target_segment", "overlay", "assigned_by"]


@dataclass(frozen=True)
class Placement:
    """Where the rules put each client.

    ``clients``: one row per input client, same order and index (``PLACEMENT_COLUMNS``);
    ``target_region``/``target_segment`` are None when nothing placed the client (UNASSIGNED).
    ``secondary``: one row per SECONDARY placement (``SECONDARY_COLUMNS``), in the clients' order
    (client_dim is sorted by client_key), per client the parent's territory first, then overlays in
    file order; ``overlay`` is None for the parent's territory, target_region/target_segment are
    None for overlays. Never a row equal to the client's own PRIMARY target.
    ``rules_version``: the content hash of the rules that produced it.
    """

    clients: pd.DataFrame
    secondary: pd.DataFrame
    rules_version: str


def evaluate(clients: pd.DataFrame, rules: Rules) -> Placement:
    """Place every client by ``rules``. ``clients`` is client_dim-shaped (plus any column the rules use)."""
    required = ["client_key", "region", "segment"] + (["client_name", "parent_org"] if rules.secondary.parent_org else [])
    missing = [c for c in required if c not in clients.columns]
    if missing:
        raise ValueError(f"evaluate: the clients frame lacks column(s) {missing}")
    keys = clients["client_key"].to_numpy(dtype=object)

    columns = _Columns(clients, rules.source)
    segment, segment_rule = _segment(columns, rules)
    columns.replace("segment", segment)
    region = columns.objects("region")
    target_region, target_segment, assigned_by = _territory(columns, rules, keys, region, segment)
    pinned_advisor = _apply_overrides(rules, keys, target_region, target_segment, assigned_by)

    placed = pd.DataFrame(
        {
            "client_key": keys,
            "segment": segment,
            "segment_rule": segment_rule,
            "target_region": target_region,
            "target_segment": target_segment,
            "assigned_by": assigned_by,
            "pinned_advisor": pinned_advisor,
        },
        index=clients.index,
    )[PLACEMENT_COLUMNS]
    secondary = _secondary(columns, rules, keys, target_region, target_segment)
    return Placement(clients=placed, secondary=secondary, rules_version=rules.version)


# --- column views, shared by every rule --------------------------------------------------------


class _Columns:
    """Per-column views computed once and reused by every rule: text codes, numbers, null masks."""

    def __init__(self, frame: pd.DataFrame, source: str):
        self._frame = frame
        self._source = source
        self._replaced: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[str, str], Any] = {}  # (column, kind) -> what that kind's builder made

    @property
    def source(self) -> str:
        """The rules file these columns are evaluated for (what errors name)."""
        return self._source

    def replace(self, name: str, values: np.ndarray) -> None:
        """Use ``values`` for column ``name`` from now on (the derived segment for the territory rules)."""
        self._replaced[name] = values
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}

    def series(self, name: str, key: str | None = None) -> pd.Series:
        if name in self._replaced:
            return pd.Series(self._replaced[name], index=self._frame.index, dtype=object)
        if name not in self._frame.columns:
            raise RulesError(self._source, [(key or name, f"unknown column {name!r}: the clients have no such column")])
        return self._frame[name]

    def objects(self, name: str) -> np.ndarray:
        """The column as an object array, missing values as None."""
        if name in self._replaced:
            return self._replaced[name]
        return self._cached(name, "objects", lambda s: s.astype(object).where(s.notna(), None).to_numpy(dtype=object), None)

    def text(self, name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, distinct values as text); code -1 is a missing value."""
        return self._cached(name, "text", _factorize_text, key)

    def numbers(self, name: str, key: str, operator: str) -> np.ndarray:
        def to_float(series: pd.Series) -> np.ndarray:
            if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
                raise RulesError(
                    self._source,
                    [
                        (
                            f"{key}.{operator}",
                            f"column {name!r} holds {series.dtype} values, not numbers: gt/gte/lt/lte need a numeric column",
                        )
                    ],
                )
            return series.to_numpy(dtype=float, na_value=np.nan)

        return self._cached(name, "numbers", to_float, key)

    def nulls(self, name: str, key: str) -> np.ndarray:
        return self._cached(name, "nulls", lambda s: s.isna().to_numpy(dtype=bool), key)

    def _cached(self, name: str, kind: str, build: Callable[[pd.Series], _T], key: str | None) -> _T:
        if (name, kind) not in self._cache:
            self._cache[(name, kind)] = build(self.series(name, key))
        # one kind, one builder: what is cached under (name, kind) is what ``build`` returns
        return cast(_T, self._cache[(name, kind)])


def _regex_matches(pattern: str, values: np.ndarray, source: str, key: str) -> np.ndarray:
    """Which distinct values ``pattern`` matches whole, within a time budget.

    A pattern with nested quantifiers (``(a+)+$``) backtracks exponentially on a value that almost
    matches: one hostile client name would hang the run. The ``regex`` package (Python's syntax, the
    same answers as ``re``) takes a timeout, so the whole column gets ``REGEX_SECONDS`` and a pattern that
    needs more fails the rules, naming the rule and the value, instead of hanging.
    """
    compiled = regex.compile(pattern)
    deadline = time.monotonic() + REGEX_SECONDS
    out = np.empty(len(values), dtype=bool)
    for i, value in enumerate(values):  # distinct values only: a few thousand at a million clients
        try:
            out[i] = compiled.fullmatch(value, timeout=max(deadline - time.monotonic(), 0.001)) is not None
        except TimeoutError:
            shown = value if len(value) <= 60 else value[:57] + "..."
            reason = (
                f"the regular expression {pattern!r} took more than {REGEX_SECONDS:g} s on the clients' values (stopped at {shown!r}): "
                "it backtracks catastrophically; avoid nested quantifiers such as (a+)+ or (a|aa)*"
            )
            raise RulesError(source, [(f"{key}.regex", reason)]) from None
    return out


def _factorize_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if pd.api.types.is_bool_dtype(series.dtype):
        text = np.where(np.asarray(uniques, dtype=bool), "true", "false").astype(object)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = np.asarray(uniques, dtype=float)
        whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
        text = np.where(whole, np.where(whole, values, 0).astype(np.int64).astype(str), values.astype(str)).astype(object)
    else:
        text = np.asarray(uniques, dtype=object)
        if pd.api.types.infer_dtype(text, skipna=True) != "string":  # mixed objects: render each distinct value
            text = pd.Series(text, dtype=object).map(as_text).to_numpy(dtype=object)
    return codes, text


# --- masks -------------------------------------------------------------------------------------


def _criteria_mask(columns: _Columns, when: dict[str, Condition], prefix: str, n: int) -> np.ndarray:
    """Clients matching every condition of ``when`` (all clients when it is empty)."""
    mask = np.ones(n, dtype=bool)
    for column, condition in when.items():
        mask &= _condition_mask(columns, column, condition, f"{prefix}.when.{column}")
    return mask


def _condition_mask(columns: _Columns, column: str, condition: Condition, key: str) -> np.ndarray:
    parts: list[np.ndarray] = []  # ANDed at the end

    def both(part: np.ndarray) -> None:
        parts.append(part)

    if any(condition.get(op) is not None for op in TEXT_OPERATORS):
        codes, values = columns.text(column, key)
        # One verdict per distinct value plus a last slot for the missing value (code -1 indexes it).
        keep = np.ones(len(values) + 1, dtype=bool)
        distinct = keep[:-1]
        if condition.eq is not None:
            distinct &= values == condition.eq
            keep[-1] = False
        if condition.ne is not None:
            distinct &= values != condition.ne
        if condition.in_ is not None:
            distinct &= pd.Series(values, dtype=object).isin(condition.in_).to_numpy(dtype=bool)
            keep[-1] = False
        if condition.not_in is not None:
            distinct &= ~pd.Series(values, dtype=object).isin(condition.not_in).to_numpy(dtype=bool)
        if condition.regex is not None:
            distinct &= _regex_matches(condition.regex, values, columns.source, key)
            keep[-1] = False
        both(keep[codes])

    lower, upper = condition.lower_bound(), condition.upper_bound()
    bound = lower or upper
    if bound is not None:
        numbers = columns.numbers(column, key, bound.operator)
        if lower is not None:
            both(numbers >= lower.value if lower.inclusive else numbers > lower.value)
        if upper is not None:
            both(numbers <= upper.value if upper.inclusive else numbers < upper.value)
    if condition.is_null:
        both(columns.nulls(column, key))
    if condition.not_null:
        both(~columns.nulls(column, key))
    mask = parts[0]  # a Condition has at least one operator (its validator)
    for part in parts[1:]:
        mask = mask & part
    return mask


def _first_match(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per client (column): the row of the first True, and whether there is one."""
    first = masks.argmax(axis=0)
    return first, masks[first, np.arange(masks.shape[1])]


# --- the steps ---------------------------------------------------------------------------------


def _segment(columns: _Columns, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    source = columns.objects("segment")
    n = len(source)
    tiers = rules.segmentation.tiers
    if not tiers:
        return source, np.full(n, None, dtype=object)
    masks = np.vstack([_criteria_mask(columns, tier.when, f"segmentation.tiers[{i}]", n) for i, tier in enumerate(tiers)])
    first, matched = _first_match(masks)
    if rules.segmentation.precedence == "source":
        matched &= columns.nulls("segment", "segment")
    tier_segment = np.array([tier.segment for tier in tiers], dtype=object)
    tier_id = np.array([tier.id for tier in tiers], dtype=object)
    return np.where(matched, tier_segment[first], source), np.where(matched, tier_id[first], _NONE)


def _territory(
    columns: _Columns, rules: Rules, keys: np.ndarray, region: np.ndarray, segment: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(region)
    ordered = [rule for _, rule in rules.rules_in_order()]
    file_index = [i for i, _ in rules.rules_in_order()]
    if not ordered:
        nothing = np.full(n, None, dtype=object)
        return nothing, nothing.copy(), np.full(n, FALLBACK, dtype=object)

    known = np.not_equal(region, _NONE) & np.not_equal(segment, _NONE)
    masks = np.empty((len(ordered), n), dtype=bool)
    for row, (i, rule) in enumerate(zip(file_index, ordered)):
        masks[row] = _criteria_mask(columns, rule.when, f"territories.rules[{i}]", n)
        if rule.assigns_client:
            masks[row] &= known  # nowhere to place a client whose own territory is unknown
    _clear_exclusions(masks, ordered, rules, keys, region, segment)

    first, matched = _first_match(masks)
    by_client = np.array([rule.assigns_client for rule in ordered], dtype=bool)[first]
    # a rule's assign is either "client" (by_client) or a Target
    fixed_region = np.array([r.assign.region if isinstance(r.assign, Target) else None for r in ordered], dtype=object)[first]
    fixed_segment = np.array([r.assign.segment if isinstance(r.assign, Target) else None for r in ordered], dtype=object)[first]
    target_region = np.where(matched, np.where(by_client, region, fixed_region), _NONE)
    target_segment = np.where(matched, np.where(by_client, segment, fixed_segment), _NONE)
    rule_id = np.array([rule.id for rule in ordered], dtype=object)
    return target_region, target_segment, np.where(matched, rule_id[first], FALLBACK)


def _positions(keys: np.ndarray, wanted: list[str]) -> np.ndarray:
    """Where each wanted client_key is (-1: not in this book). Hashes the few wanted keys, not the book."""
    hits = np.flatnonzero(pd.Series(keys, dtype=object).isin(wanted).to_numpy())
    found = pd.Series(hits, index=pd.Index(keys[hits], dtype=object))
    if not found.index.is_unique:
        twice = sorted(set(found.index[found.index.duplicated()]))
        raise ValueError(f"evaluate: client_key must be unique; {twice} appear more than once")
    return found.reindex(pd.Index(wanted, dtype=object)).fillna(-1).to_numpy(dtype=np.int64)


def _clear_exclusions(masks, ordered, rules: Rules, keys: np.ndarray, region, segment) -> None:
    """For each exclusion, clear the rules that would put that client in the excluded territory."""
    if not rules.exclusions:
        return
    positions = _positions(keys, [e.client_key for e in rules.exclusions])
    present = positions >= 0  # an exclusion for a client not in this book is simply idle
    positions = positions[present]
    excluded_region = np.array([e.not_in.region for e in rules.exclusions], dtype=object)[present]
    excluded_segment = np.array([e.not_in.segment for e in rules.exclusions], dtype=object)[present]
    for row, rule in enumerate(ordered):
        if rule.assigns_client:
            hit = (region[positions] == excluded_region) & (segment[positions] == excluded_segment)
        else:
            hit = (excluded_region == rule.assign.region) & (excluded_segment == rule.assign.segment)
        masks[row, positions[hit]] = False


def _apply_overrides(rules: Rules, keys: np.ndarray, target_region, target_segment, assigned_by) -> np.ndarray:
    """Pin territories (in place) and return the pinned advisor per client."""
    pinned = np.full(len(target_region), None, dtype=object)
    if not rules.overrides:
        return pinned
    positions = _positions(keys, [o.client_key for o in rules.overrides])
    for override, position in zip(rules.overrides, positions):  # one entry per override in the file
        if position < 0:
            continue
        if override.assign is not None:
            target_region[position] = override.assign.region
            target_segment[position] = override.assign.segment
            assigned_by[position] = OVERRIDE_PREFIX + override.client_key
        if override.advisor is not None:
            pinned[position] = override.advisor
    return pinned


def _secondary(columns: _Columns, rules: Rules, keys: np.ndarray, target_region, target_segment) -> pd.DataFrame:
    """SECONDARY rows in the clients' order; per client the parent's territory first, then overlays in file order."""
    n = len(keys)
    parts: list[tuple[np.ndarray, dict]] = []  # (client positions, the other columns)
    if rules.secondary.parent_org:
        child, parent = _parents(columns, n)
        region, segment = target_region[parent], target_segment[parent]
        # Only where the parent is placed somewhere, and somewhere else than the client itself.
        elsewhere = np.not_equal(region, _NONE) & ((region != target_region[child]) | (segment != target_segment[child]))
        child = child[elsewhere]
        parent_territory = {"target_region": region[elsewhere], "target_segment": segment[elsewhere], "overlay": None}
        parts.append((child, {**parent_territory, "assigned_by": PARENT_ORG}))
    for i, overlay in enumerate(rules.secondary.overlays):
        rows = np.flatnonzero(_criteria_mask(columns, overlay.when, f"secondary.overlays[{i}]", n))
        overlay_territory = {"target_region": None, "target_segment": None, "overlay": overlay.overlay}
        parts.append((rows, {**overlay_territory, "assigned_by": overlay.id}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SECONDARY_COLUMNS})

    positions = np.concatenate([rows for rows, _ in parts])
    kind = np.concatenate([np.full(len(rows), k) for k, (rows, _) in enumerate(parts)])
    order = np.lexsort((kind, positions))  # client order, then kind: integers, so a million rows sort fast

    def column(name: str) -> np.ndarray:
        pieces = [
            value if isinstance(value, np.ndarray) else np.full(len(rows), value, dtype=object)
            for rows, value in ((rows, values[name]) for rows, values in parts)
        ]
        return np.concatenate(pieces).astype(object)[order]

    out = pd.DataFrame({"client_key": keys[positions[order]], **{name: column(name) for name in SECONDARY_COLUMNS[1:]}})
    return out[SECONDARY_COLUMNS]


def _parents(columns: _Columns, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(client position, parent position) for every client whose parent_org names another client.

    Names are compared like aliases (case, spaces and punctuation ignored: ``canonical.alias_key``).
    Among several clients bearing the parent's name, the first by client_key, never the client itself.
    """
    parent_codes, parent_names = columns.text("parent_org", "secondary.parent_org")  # shared with the rules
    parent_keys = _name_keys(parent_names)
    wanted = pc.filter(parent_keys, pc.not_equal(parent_keys, ""))
    name_keys = _name_keys(columns.objects("client_name"))
    candidate = np.flatnonzero(pc.is_in(name_keys, value_set=wanted).to_numpy(zero_copy_only=False))
    candidate_keys = pc.take(name_keys, pa.array(candidate)).to_numpy(zero_copy_only=False)

    # Rank the clients bearing each parent name by client_key. Most names are borne by one client
    # (rank 0): only the shared ones need sorting.
    rank = np.zeros(len(candidate), dtype=np.int64)
    shared = np.flatnonzero(pd.Series(candidate_keys, dtype=object).duplicated(keep=False).to_numpy())
    if len(shared):
        client_keys = columns.objects("client_key")[candidate[shared]]
        tied = pd.DataFrame({"name_key": candidate_keys[shared], "client_key": client_keys, "i": shared})
        tied = tied.sort_values(["name_key", "client_key"], kind="stable")
        rank[tied["i"].to_numpy()] = tied.groupby("name_key", sort=False).cumcount().to_numpy()
    unique_keys = parent_keys.to_numpy(zero_copy_only=False)

    def bearer(r: int) -> np.ndarray:
        """Per distinct parent_org: the position of the r-th client bearing that name (-1: none); then -1 for
        'no parent_org' (code -1)."""
        at = rank == r
        found = pd.Series(candidate[at], index=pd.Index(candidate_keys[at], dtype=object)).reindex(unique_keys)
        return np.append(found.fillna(-1).to_numpy(dtype=np.int64), -1)

    parent = bearer(0)[parent_codes]  # code -1 (no parent_org) takes the trailing -1
    own = np.flatnonzero(parent == np.arange(n))
    parent[own] = bearer(1)[parent_codes[own]]
    child = np.flatnonzero(parent >= 0)
    return child, parent[child]


def _name_keys(values: np.ndarray) -> pa.Array:
    """``canonical.alias_key`` over text values (None -> ""), in Arrow, several times faster than Python's
    ``re`` over a million names, with the same result (checked against ``alias_key`` in the tests).

    Most names only need lower-casing and their spaces dropped; the regex runs on the rest.
    """
    text = pc.fill_null(pa.array(values, type=pa.string(), from_pandas=True), "")
    keys = pc.replace_substring(pc.utf8_lower(text), " ", "")
    rest = pc.invert(pc.ascii_is_alnum(keys))  # lower-cased, so ASCII alphanumeric means [0-9a-z] only
    if not pc.any(rest).as_py():
        return keys
    fixed = pc.replace_substring_regex(pc.filter(keys, rest), _NOT_ALNUM, "")
    return pc.replace_with_mask(keys, rest, fixed)
