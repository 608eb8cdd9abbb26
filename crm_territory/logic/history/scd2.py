"""History (SCD Type 2) of a table across runs: versions opened, closed and reopened (questions over it: point_in_time).

``client_dim`` and ``assignments_fact`` say what is true *now*: every run replaces them. To answer
"who owned this client on 1 March" the engine also keeps every version of every row, each with the
half-open interval in which it was true, ``[valid_from, valid_to)``:

- ``valid_from``: the ``as_of`` of the run that first saw this version (UTC);
- ``valid_to``: the ``as_of`` of the run that saw it change or disappear (UTC), missing (NaT) while
  the version is still true (an *open* row);
- ``is_current``: True exactly for open rows (what a reader filters on);
- ``change_hash``: a hash of the tracked columns, so deciding "did this row change" compares one
  short text per key instead of every column.

Only the tracked columns make a new version. Untracked columns (timestamps of the source record,
free-text notes) are recorded as they were when the version opened and do not churn the history.
Nothing is ever deleted: a key that leaves the snapshot is closed, and a key that comes back opens
a new version, so the history of a client that left every source is kept.

Everything is vectorised over the key: keys are turned into integer codes once and matched with
array lookups (a pandas outer merge costs seconds at a million rows), and the output is put into
(key, valid_from) order with Arrow's sort, which is fast on the already-ordered history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_territory.logic.messages import join_messages

HISTORY_COLUMNS = ["valid_from", "valid_to", "is_current", "change_hash"]

# pandas' SipHash key for text values: exactly 16 bytes. Changing it changes every change_hash, which
# would make every key look changed on the next run: never change it.
HASH_KEY = "crm-territory-v1"

# assignments_fact has its own ``is_current`` (is this an active client's assignment), which collides
# with the history's. Its history stores that flag under this name (see ``assignments_snapshot``).
ASSIGNMENT_IS_CURRENT = "assignment_is_current"

_UTC = "datetime64[ns, UTC]"


# ---------------------------------------------------------------- the change hash


def change_hash(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A 16-hex-character hash of each row's values in ``columns``.

    Stable across runs and processes: pandas hashes numbers by their bits and text with SipHash
    under a fixed key (``HASH_KEY``), never with Python's per-process randomised ``hash()``, so the
    hash stored in history yesterday compares equal to the hash of the same values today. The
    columns are hashed in name order (listing them in another order is not a change), and each
    value is hashed together with a "missing" flag, so every missing value (None, NaN, pd.NA, NaT)
    hashes the same and none of them equals the empty string or the text "None".

    The hash is of the values *as typed*: an instant hashes the same in any time zone, but a column
    whose dtype changes (int to float, say) hashes differently, so keep the models' dtypes stable.
    Changing the tracked columns themselves changes every row's hash: the next run opens a new
    version of every key once.
    """
    return pd.Series(_hex16(_hash_values(frame, columns)), index=frame.index, dtype=object, name="change_hash")


def _hash_values(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The change hash as uint64 (``change_hash`` is its hex text)."""
    parts: dict[str, object] = {}
    for position, column in enumerate(sorted(columns)):
        values, missing = _hashable(frame[column])
        parts[f"value_{position}"] = values
        parts[f"missing_{position}"] = missing
    if not parts:
        raise ValueError("change_hash needs at least one column to hash")
    frame_to_hash = pd.DataFrame(parts, index=pd.RangeIndex(len(frame)), copy=False)
    return pd.util.hash_pandas_object(frame_to_hash, index=False, hash_key=HASH_KEY, categorize=False).to_numpy()


def _hashable(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column as an array pandas hashes deterministically, with missing values replaced, and the missing flags."""
    missing = values.isna().to_numpy()
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        # nanoseconds since the epoch: the same instant in any zone (or unit) gives the same number
        ints = pd.DatetimeIndex(values).as_unit("ns").asi8.copy()
        ints[missing] = 0
        return ints, missing
    if pd.api.types.is_bool_dtype(dtype):
        return values.to_numpy(dtype=bool, na_value=False), missing
    if pd.api.types.is_integer_dtype(dtype):
        return values.to_numpy(dtype="int64", na_value=0), missing
    if pd.api.types.is_float_dtype(dtype):
        return values.to_numpy(dtype="float64", na_value=0.0) + 0.0, missing  # + 0.0 turns -0.0 into 0.0
    text = values.to_numpy(dtype=object, copy=True)
    text[missing] = ""
    return text, missing


def _hex16(hashes: np.ndarray) -> np.ndarray:
    """uint64 -> 16 lower-case hex characters, without a Python-level loop."""
    text = hashes.astype(">u8").tobytes().hex().encode("ascii")
    return np.frombuffer(text, dtype="S16").astype("U16").astype(object)


def _parse_hex16(texts: np.ndarray) -> np.ndarray:
    """16-hex-character texts -> uint64: comparing numbers is cheaper than making a million texts to compare."""
    try:
        joined = "".join(texts)
        if len(joined) != 16 * len(texts):
            raise ValueError("not 16 characters each")
        return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "apply_scd2: history.change_hash must hold 16 hex characters on every open row "
            f"(as change_hash writes it); it has been edited or corrupted ({error})"
        ) from None


# ---------------------------------------------------------------- applying a snapshot


def apply_scd2(
    history: pd.DataFrame | None,
    snapshot: pd.DataFrame,
    *,
    key: list[str],
    tracked: list[str],
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """The history after seeing ``snapshot`` (one row per ``key``) at ``as_of``.

    Per key, against its open row:

    - not open in history (a new key, or one whose rows are all closed): a new open row from
      ``as_of``, even when its values equal the last closed version (it was gone in between);
    - same ``change_hash``: nothing changes;
    - another ``change_hash``: the open row is closed at ``as_of`` and a new one opens at ``as_of``;
    - open in history but absent from the snapshot: the open row is closed at ``as_of``, never deleted.

    So an unchanged snapshot returns the history as it was, and applying the same snapshot again
    (at the same or a later ``as_of``) changes nothing. History only moves forward: an ``as_of``
    earlier than a time already recorded (a valid_from or valid_to) raises ValueError, and so does a
    snapshot that would close a version at the very instant it opened (two different states at one
    instant: re-run with a later ``as_of``). ``history`` is None (or empty) on the first run.
    A naive ``as_of`` is taken as UTC. Output rows are in (key, valid_from) order.
    """
    # Rows are addressed by position throughout: neither input's index matters, and neither is copied whole.
    when = utc_timestamp(as_of)
    snap = snapshot
    _check_snapshot(snap, key, tracked)
    if history is None or len(history) == 0:  # first run (an empty stored history may lack the exact dtypes)
        hist = _empty_history_like(snap)
    else:
        hist = _checked_history(history, key)
        _refuse_going_back(hist, when)
    columns = [c for c in hist.columns if c not in HISTORY_COLUMNS]
    columns += [c for c in snap.columns if c not in columns] + HISTORY_COLUMNS

    open_rows = np.flatnonzero(hist["is_current"].to_numpy(dtype=bool))
    open_codes, snap_codes = _key_codes([hist[c].iloc[open_rows] for c in key], [snap[c] for c in key])
    _refuse_duplicated_keys(snap, snap_codes, key)
    _refuse_several_open_rows(hist, open_rows, open_codes, key)
    new_hash = _hash_values(snap, tracked)

    # For every key code: its snapshot row and its open history row (-1: none).
    size = int(max(open_codes.max(initial=-1), snap_codes.max(initial=-1))) + 1
    open_row_of = np.full(size, -1, dtype=np.int64)
    open_row_of[open_codes] = open_rows
    snap_row_of = np.full(size, -1, dtype=np.int64)
    snap_row_of[snap_codes] = np.arange(len(snap))

    matched = open_row_of[snap_codes]  # per snapshot row: its open history row, or -1
    has_open = matched >= 0
    stored_hash = np.zeros(len(hist), dtype=np.uint64)
    stored_hash[open_rows] = _parse_hex16(hist["change_hash"].to_numpy(dtype=object)[open_rows])
    changed = has_open.copy()
    changed[has_open] = new_hash[has_open] != stored_hash[matched[has_open]]

    gone = open_rows[snap_row_of[open_codes] < 0]  # open rows whose key left the snapshot
    to_close = np.sort(np.concatenate([matched[changed], gone]))
    to_open = np.flatnonzero(changed | ~has_open)
    _refuse_empty_intervals(hist, to_close, when, key)

    valid_to, is_current = hist["valid_to"], hist["is_current"]
    if len(to_close):
        valid_to = valid_to.copy()
        valid_to.iloc[to_close] = when
        is_current = is_current.copy()
        is_current.iloc[to_close] = False
    kept = {**{c: hist[c] for c in hist.columns}, "valid_to": valid_to, "is_current": is_current}
    opened_rows = snap.iloc[to_open].reset_index(drop=True)  # the new versions: few, except on the first run
    opened = {
        **{c: opened_rows[c] for c in opened_rows.columns},
        "valid_from": pd.Series(when, index=opened_rows.index).astype(_UTC),
        "valid_to": pd.Series(pd.NaT, index=opened_rows.index, dtype=_UTC),
        "is_current": pd.Series(True, index=opened_rows.index, dtype=bool),
        "change_hash": pd.Series(_hex16(new_hash[to_open]), index=opened_rows.index, dtype=object),
    }
    # copy=False: the columns are fresh already; consolidating them would copy every value once more
    out = pd.DataFrame({c: _stack(kept.get(c), len(hist), opened.get(c), len(to_open)) for c in columns}, copy=False)
    return _in_key_order(out, key)


def _stack(upper: pd.Series | None, upper_rows: int, lower: pd.Series | None, lower_rows: int) -> pd.Series:
    """One column of history rows followed by new rows.

    Column by column rather than one DataFrame concat: a frame concat scans every value of an
    all-missing column in Python (a second at a million rows). An empty side is left out so that it
    cannot change the other side's dtype (an unchanged snapshot must give back the history as it was).
    A column only one side has (the snapshot gained or lost a column) is missing on the other side.
    """
    parts = [
        part if part is not None else pd.Series(np.full(rows, None, dtype=object))  # None, as the tables hold text
        for part, rows in [(upper, upper_rows), (lower, lower_rows)]
        if rows
    ]
    if len(parts) == 2:
        return pd.concat(parts, ignore_index=True)
    only = parts[0] if parts else (upper if upper is not None else lower)
    assert only is not None  # every column is a column of the history, of the snapshot or of both
    column = only.copy()  # never hand back the caller's own arrays: editing the result must not edit the input
    column.index = pd.RangeIndex(len(column))
    return column


def _check_snapshot(snap: pd.DataFrame, key: list[str], tracked: list[str]) -> None:
    if not key:
        raise ValueError("apply_scd2: key names no column; give the column(s) that identify a row")
    if not tracked:
        raise ValueError("apply_scd2: tracked names no column; give the column(s) whose change makes a new version")
    missing = [c for c in dict.fromkeys(key + tracked) if c not in snap.columns]
    if missing:
        raise ValueError(f"apply_scd2: the snapshot lacks column(s) {missing} (key or tracked)")
    reserved = [c for c in HISTORY_COLUMNS if c in snap.columns]
    if reserved:
        raise ValueError(
            f"apply_scd2: the snapshot has column(s) {reserved}, which history adds itself; rename them first "
            f"(assignments_fact: use assignments_snapshot(), which renames is_current to {ASSIGNMENT_IS_CURRENT})"
        )
    null_keys = int(sum(snap[c].isna().sum() for c in key))
    if null_keys:
        raise ValueError(
            f"apply_scd2: the snapshot has {null_keys} missing key value(s) ({', '.join(key)}); every row needs its key"
        )


def _refuse_duplicated_keys(snap: pd.DataFrame, snap_codes: np.ndarray, key: list[str]) -> None:
    counts = np.bincount(snap_codes) if len(snap_codes) else np.zeros(0, dtype=np.int64)
    shared = counts[snap_codes] > 1
    if shared.any():
        sample = snap.iloc[np.flatnonzero(shared)][key].drop_duplicates().head(3).to_dict("records")
        raise ValueError(
            f"apply_scd2: the snapshot must have one row per key ({', '.join(key)}); "
            f"{int(shared.sum())} rows share a key, e.g. {sample}"
        )


def _checked_history(hist: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The stored history with its time columns as UTC timestamps; its shape checked."""
    missing = [c for c in dict.fromkeys(key + HISTORY_COLUMNS) if c not in hist.columns]
    if missing:
        raise ValueError(f"apply_scd2: the history lacks column(s) {missing}; is it an SCD2 history of this table?")
    if not pd.api.types.is_bool_dtype(hist["is_current"]) or hist["is_current"].isna().any():
        raise ValueError(f"apply_scd2: history.is_current must be boolean without missing values, got {hist['is_current'].dtype}")
    if hist["valid_from"].dtype != _UTC or hist["valid_to"].dtype != _UTC:
        hist = hist.assign(valid_from=_utc_column(hist["valid_from"]), valid_to=_utc_column(hist["valid_to"]))
    return hist


def _utc_column(values: pd.Series) -> pd.Series:
    """Timestamps as UTC nanoseconds (a store may give text or another zone); already-UTC columns untouched."""
    return values if values.dtype == _UTC else pd.to_datetime(values, utc=True).astype(_UTC)


def _refuse_going_back(hist: pd.DataFrame, when: pd.Timestamp) -> None:
    # Every recorded time is the as_of of an earlier run: an earlier as_of would rewrite the past
    # (a reopened key could overlap a version closed later), so history only moves forward.
    latest = max((t for t in [hist["valid_from"].max(), hist["valid_to"].max()] if pd.notna(t)), default=None)
    if latest is not None and when < latest:
        raise ValueError(
            f"apply_scd2: as_of {when.isoformat()} is earlier than the latest change already in history "
            f"({latest.isoformat()}); history only moves forward: apply snapshots in time order, with a later as_of"
        )


def _refuse_several_open_rows(hist: pd.DataFrame, open_rows: np.ndarray, open_codes: np.ndarray, key: list[str]) -> None:
    counts = np.bincount(open_codes) if len(open_codes) else np.zeros(0, dtype=np.int64)
    several = counts[open_codes] > 1
    if several.any():
        sample = hist.iloc[open_rows[several]][key].drop_duplicates().head(3).to_dict("records")
        raise ValueError(
            f"apply_scd2: the history has more than one open row for {int((counts > 1).sum())} key(s), e.g. {sample}; "
            "it has been edited or corrupted: run check_history and repair it before applying a snapshot"
        )


def _refuse_empty_intervals(hist: pd.DataFrame, to_close: np.ndarray, when: pd.Timestamp, key: list[str]) -> None:
    opened_now = (hist["valid_from"].iloc[to_close] == when).to_numpy()
    if opened_now.any():
        sample = hist.iloc[to_close[opened_now]][key].head(3).to_dict("records")
        raise ValueError(
            f"apply_scd2: {int(opened_now.sum())} version(s) opened at as_of {when.isoformat()} would change or close "
            f"at that same instant (e.g. {sample}): a history cannot hold two states at one instant; "
            "apply this snapshot with a later as_of"
        )


def _empty_history_like(snap: pd.DataFrame) -> pd.DataFrame:
    empty = snap.iloc[:0].copy()
    empty["valid_from"] = pd.Series(dtype=_UTC)
    empty["valid_to"] = pd.Series(dtype=_UTC)
    empty["is_current"] = pd.Series(dtype=bool)
    empty["change_hash"] = pd.Series(dtype=object)
    return empty


def _key_codes(left: list[pd.Series], right: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct key (over both sides; a key is one Series per key column), so matching
    keys is array lookups, not a merge."""
    combined: np.ndarray | None = None
    for left_column, right_column in zip(left, right):
        values = pd.concat([left_column, right_column], ignore_index=True)
        codes, uniques = pd.factorize(values)
        if combined is None:
            combined = codes.astype(np.int64)
        else:
            # both factors are < the number of rows, so the product cannot overflow; re-factorize to stay small
            combined, _ = pd.factorize(combined * len(uniques) + codes)
    assert combined is not None
    split = len(left[0])
    return combined[:split], combined[split:]


def _in_key_order(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Rows in (key, valid_from) order, stable, with a fresh RangeIndex.

    Arrow's sort is used because it is several times faster than pandas' multi-column sort on text
    and cheap on input that is already in order (the stored history); UTF-8 byte order is code
    point order, the same order as Python's string comparison.
    """
    order = _sort_positions(frame, key)
    if np.array_equal(order, np.arange(len(frame))):
        ordered = frame.copy(deep=False)
    else:
        ordered = frame.take(order)
    ordered.index = pd.RangeIndex(len(ordered))  # in place: reset_index would copy every column
    return ordered


def utc_timestamp(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise ValueError("a point in time is required, got a missing value")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.as_unit("ns")


# ---------------------------------------------------------------- checks


def check_history(history: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The rows that break the history's invariants, each with ``problem`` (empty frame = valid).

    A reader of history relies on: at most one open row per key (else "the current version" is
    ambiguous); per key, intervals that do not overlap (else two versions were true at once);
    valid_to after valid_from (an empty or reversed interval is never true); and is_current exactly
    on the rows whose valid_to is missing (the flag and the interval must tell the same story).
    A row counts as open when either is_current or a missing valid_to says so. Rows keep the
    history's index, so they can be traced back; several problems of one row are joined by '; '.
    """
    hist = history.assign(valid_from=_utc_column(history["valid_from"]), valid_to=_utc_column(history["valid_to"]))
    start, end = hist["valid_from"], hist["valid_to"]
    is_current = hist["is_current"].astype(bool)
    open_rows = is_current | end.isna()

    open_per_key = open_rows.groupby([hist[c] for c in key], sort=False, dropna=False).transform("sum")
    several_open = open_rows & (open_per_key > 1)

    # Overlap: a row starting before the latest end of the same key's earlier rows (an open row ends never).
    order = _sort_positions(hist, key)
    ordered = hist.iloc[order]
    first = _first_of_key(ordered, key)
    ends = _ns(ordered["valid_to"], missing=np.iinfo(np.int64).max)
    latest_end = pd.Series(ends).groupby(np.cumsum(first)).cummax().to_numpy()
    previous_end = np.empty_like(latest_end)
    previous_end[1:] = latest_end[:-1]  # the latest end among the key's earlier rows (int64: exact to the ns)
    starts = _ns(ordered["valid_from"], missing=np.iinfo(np.int64).max)  # a missing start is reported as such
    overlaps = pd.Series(False, index=hist.index)
    overlaps.iloc[order] = ~first & (starts < previous_end)

    empty_interval = end.notna() & start.notna() & (end <= start)
    inconsistent = is_current != end.isna()

    problem = join_messages(
        [
            (start.isna(), "valid_from is missing"),
            (several_open, "more than one open row for this key"),
            (overlaps, "overlaps an earlier version of this key (starts before that version's valid_to)"),
            (empty_interval, "valid_to is not after valid_from"),
            (inconsistent, "is_current disagrees with valid_to (exactly the rows without valid_to are current)"),
        ],
        hist.index,
    )
    bad = problem.notna()
    out = hist.loc[bad, key + ["valid_from", "valid_to", "is_current"]].copy()
    out["problem"] = problem[bad]
    return out


def _first_of_key(ordered: pd.DataFrame, key: list[str]) -> np.ndarray:
    """True where a row starts a new key in a frame ordered by key."""
    first = np.zeros(len(ordered), dtype=bool)
    if len(ordered):
        first[0] = True
    for column in key:
        values = ordered[column].to_numpy(dtype=object)
        first[1:] |= values[1:] != values[:-1]
    return first


def _sort_positions(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    columns = key + ["valid_from"]
    table = pa.Table.from_pandas(frame[columns], preserve_index=False)
    return pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns]).to_numpy()


def _ns(values: pd.Series, *, missing: int) -> np.ndarray:
    ints = pd.DatetimeIndex(values).as_unit("ns").asi8.copy()
    ints[values.isna().to_numpy()] = missing
    return ints


def assignments_snapshot(assignments_fact: pd.DataFrame) -> pd.DataFrame:
    """assignments_fact ready for history: its own is_current renamed to ``assignment_is_current``.

    The fact's is_current says whether the client is active; history's says whether the version is
    open. Both are kept, under different names. Key: (client_key, territory_id, assignment_type).
    """
    return assignments_fact.rename(columns={"is_current": ASSIGNMENT_IS_CURRENT})
