"""Advisor capacity: give every client a PRIMARY advisor who serves its territory, within capacity.

Why it is built this way:

- **Minimal disruption first.** A client keeps its current advisor when that advisor is active,
  serves the client's territory and has room. An advisor holding more such clients than its
  capacity keeps them in ``client_key`` order up to capacity (so the result never depends on row
  order); the rest move. Overrides (``pinned_advisor``) are always honoured, even over capacity,
  and they count in the advisor's load.
- **Capacity is a guarantee, not a hope.** No advisor ends over capacity unless a territory it
  serves is over capacity as a whole. Because advisors serve several territories, "as a whole"
  is a property of a *group* of territories: the smallest set S of territories whose clients
  outnumber the free capacity of every active advisor serving any of them (Hall's condition). S
  is read off a maximum flow (the territories still reachable from an unsatisfied one in the
  residual graph). Only S's advisors may exceed capacity; there the overflow is spread in
  proportion to capacity, and ``over_capacity`` reports S with the numbers. A kept client of
  another territory sitting at one of S's advisors moves (it fits elsewhere; staying would only
  deepen the overflow), and outside S kept clients move only when the others cannot fit otherwise
  (the fewest moves, by linear programming).
- **Balance is optimal, and measured.** New clients are placed by linear programs over the
  aggregate flows x[t, a] (clients of territory t given to advisor a; ~20 x 60 variables whatever
  the number of clients): the first minimises the maximum utilisation z = load / capacity, and its
  optimum z* is ``lp_bound``, a lower bound for any integer assignment given the kept clients.
  Further rounds fix the advisors that sit at z* in every optimum (positive dual) and minimise the
  maximum of the others, so advisors off the bottleneck are balanced too (a lexicographic
  min-max). Flows are rounded to whole clients by a largest-remainder rounding that keeps every
  territory's total exact and no advisor above the ceiling of its fractional load, hence never
  above a capacity the LP respects and never more than 1 / capacity above the LP's utilisation:
  ``achieved - lp_bound <= 1 / min capacity``.
- **Vectorised.** The per-client work (classification, trimming, hand-out) is numpy over all
  clients; loops run only over territories and advisors, a few dozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from scipy.optimize import linprog

REASONS = (
    "kept",
    "pinned",
    "assigned_new",
    "reassigned_inactive",
    "reassigned_not_serving",
    "reassigned_over_capacity",
    "reassigned_unknown_advisor",
    "no_advisor_for_territory",
)
_KEPT, _PINNED, _NEW, _INACTIVE, _NOT_SERVING, _OVER, _UNKNOWN, _NO_ADVISOR = range(len(REASONS))

_TOL = 1e-6  # LP solutions are floats; flows and loads are whole clients


@dataclass(frozen=True)
class CapacityResult:
    """The outcome of :func:`assign_advisors`.

    - ``assignments``: one row per input client, in input order: client_key, advisor_email (None
      when no active advisor serves the territory), reason (one of :data:`REASONS`).
    - ``loads``: one row per advisor: advisor_email, advisor_name, territories, active, capacity,
      pinned, kept, assigned, load (= pinned + kept + assigned), utilisation (load / capacity).
    - ``over_capacity``: one row per territory whose clients cannot all fit (see the module
      docstring), with its numbers and those of its group of territories sharing advisors.
    - ``lp_bound``: the LP's optimal maximum utilisation given the kept and pinned clients, a lower
      bound for any integer assignment; ``achieved``: the maximum utilisation after rounding
      (both over advisors with capacity > 0).
    """

    assignments: pd.DataFrame
    loads: pd.DataFrame
    over_capacity: pd.DataFrame
    lp_bound: float
    achieved: float

    @property
    def gap(self) -> float:
        """How far rounding to whole clients is from the LP optimum (at most 1 / min capacity)."""
        return self.achieved - self.lp_bound


OVER_CAPACITY_COLUMNS = [
    "territory_id",
    "clients",  # clients of the territory needing an advisor of it (pinned clients excluded)
    "advisors",  # active advisors serving it (with capacity > 0)
    "capacity",  # their total capacity
    "free_capacity",  # their capacity left after their pinned clients
    "group_territories",  # the territories sharing advisors with it that are over capacity together
    "group_clients",
    "group_advisors",
    "group_capacity",
    "group_free_capacity",
    "overflow",  # group_clients - group_free_capacity: clients that cannot fit (> 0)
]


def assign_advisors(clients: pd.DataFrame, advisors: pd.DataFrame) -> CapacityResult:
    """Assign each client a PRIMARY advisor: kept when allowed, pinned always, else balanced within capacity.

    ``clients``: client_key, territory_id, current_advisor, pinned_advisor (lower-case e-mails or
    None). ``advisors``: advisor_email (lower-case, unique), advisor_name, territories (list of
    territory ids), capacity (int >= 0), active (bool). See the module docstring for the rules.
    """
    book = _AdvisorBook.of(advisors)
    territory_ids = pd.unique(clients["territory_id"].to_numpy(dtype=object))
    territory_ids = np.sort(territory_ids[pd.notna(territory_ids)]).astype(object)
    n_t, n_a = len(territory_ids), len(book.emails)
    serves = book.serves_matrix(territory_ids)  # [T, A]
    eligible = serves & (book.active & (book.capacity > 0))[None, :]  # may take clients of t
    served = eligible.any(axis=1)

    keys = clients["client_key"].to_numpy(dtype=object)
    t = pd.Index(territory_ids).get_indexer(clients["territory_id"])
    current, no_current = _emails(clients["current_advisor"])
    pinned, not_pinned = _emails(clients["pinned_advisor"])
    cur = book.index.get_indexer(current)
    pin = book.index.get_indexer(pinned)
    has_territory = t >= 0
    # Index -1 (no territory, unknown advisor) picks the False padding row / column.
    serves_pad = np.pad(serves, ((0, 1), (0, 1)))
    territory_served = np.append(served, False)[t]

    # Why a client cannot simply keep its advisor; "over capacity" marks the candidates to keep.
    is_pinned = ~not_pinned
    cause = np.select(
        [
            is_pinned,
            ~territory_served,
            no_current,
            cur < 0,
            ~np.append(book.active, False)[cur],
            ~serves_pad[t, cur],
        ],
        [_PINNED, _NO_ADVISOR, _NEW, _UNKNOWN, _INACTIVE, _NOT_SERVING],
        default=_OVER,
    ).astype(np.int8)
    candidate = cause == _OVER
    needs_advisor = territory_served & ~is_pinned

    pinned_load = np.bincount(pin[pin >= 0], minlength=n_a)
    free = np.where(book.active & (book.capacity > 0), np.maximum(book.capacity - pinned_load, 0), 0)

    # Trim: an advisor keeps its candidates in client_key order up to its free capacity.
    keep = candidate.copy()
    held = np.bincount(cur[candidate], minlength=n_a)
    crowded = candidate & np.append(held > free, False)[cur]
    if crowded.any():
        rows = np.flatnonzero(crowded)
        rank = _rank_within(cur[rows], keys[rows])
        keep[rows] = rank < free[cur[rows]]

    # Every non-pinned client is movable in principle; a territory nobody serves cannot place any.
    wanting = np.bincount(t[has_territory & ~is_pinned], minlength=n_t)
    kept_pairs = _pair_counts(t[keep], cur[keep], n_t, n_a)

    # Over capacity as a whole: the territories a maximum flow cannot satisfy, and those tied to them.
    over_t, over_a = _over_capacity_groups(wanting, free, eligible)
    fit_t, fit_a = ~over_t, ~over_a
    kept_pairs[np.ix_(fit_t, over_a)] = 0  # a kept client of a fitting territory leaves an overflowing advisor
    fit = np.outer(fit_t, fit_a)
    kept_pairs = np.where(fit, _fewest_moves(kept_pairs * fit, wanting * fit_t, free * fit_a, eligible & fit), kept_pairs)

    # Un-keep the candidates beyond the kept count of their (territory, advisor), last by client_key.
    held_pairs = _pair_counts(t[keep], cur[keep], n_t, n_a)
    reduced = keep & np.pad(held_pairs > kept_pairs, ((0, 1), (0, 1)))[t, cur]
    if reduced.any():
        rows = np.flatnonzero(reduced)
        rank = _rank_within(t[rows] * n_a + cur[rows], keys[rows])
        keep[rows] = rank < kept_pairs[t[rows], cur[rows]]

    fixed = pinned_load + kept_pairs.sum(axis=0)
    demand = np.where(served, wanting, 0) - kept_pairs.sum(axis=1)
    room = np.where(fit_a, free - kept_pairs.sum(axis=0), np.inf)  # hard caps hold outside the over-capacity groups
    lanes = eligible & (np.outer(over_t, over_a) | np.outer(fit_t, fit_a)) & (room > 0)[None, :] & (demand > 0)[:, None]
    flows, z_star = _balanced_flows(demand, fixed, book.capacity, room, lanes)
    counts = _round_flows(flows, demand, room)

    advisor = np.full(len(keys), -1, dtype=np.int64)
    advisor[is_pinned] = pin[is_pinned]
    advisor[keep] = cur[keep]
    place = needs_advisor & ~keep
    advisor[place] = _hand_out(t[place], cur[place], candidate[place], keys[place], counts)

    emails = np.append(book.emails, np.array([None], dtype=object)).astype(object)  # index -1 -> None
    out_email = emails[advisor]
    out_email[is_pinned] = pinned[is_pinned]  # an override is honoured even for an advisor not in advisor_dim
    reason = np.where(~is_pinned & (advisor >= 0) & (advisor == cur), _KEPT, cause)
    assignments = pd.DataFrame(
        {"client_key": keys, "advisor_email": out_email, "reason": np.asarray(REASONS, dtype=object)[reason]}
    )

    final_load = np.bincount(advisor[advisor >= 0], minlength=n_a)
    kept_load = np.bincount(advisor[reason == _KEPT], minlength=n_a)
    loads = book.loads(pinned_load, kept_load, final_load)
    with_capacity = book.capacity > 0
    fixed_utilisation = fixed[with_capacity] / book.capacity[with_capacity]
    lp_bound = float(max([z_star, *fixed_utilisation], default=0.0))
    achieved = float(max(loads.loc[with_capacity, "utilisation"], default=0.0))
    over = _over_capacity_table(territory_ids, over_t, wanting, eligible, book.capacity, free)
    return CapacityResult(assignments, loads, over, lp_bound, achieved)


def advisor_warnings(result: CapacityResult) -> pd.DataFrame:
    """Advisors over capacity, each with the reason the capacity guarantee allows it.

    By construction an advisor ends over capacity only when a territory it serves is over capacity
    as a whole (``cause`` = territory_over_capacity, with that group's numbers in ``detail``) or
    when overrides alone pin more clients to it than its capacity (``cause`` = pinned_over_capacity).
    An empty frame means every advisor is within capacity.
    """
    loads = result.loads
    over = loads[loads["load"] > loads["capacity"]]
    by_territory = result.over_capacity.set_index("territory_id")
    by_territory["overflow_group"] = by_territory["group_territories"].map(tuple)
    rows = []
    # Off the hot path: this loops over advisors already over capacity (a handful at most) and, for each,
    # over its over-capacity territory groups (fewer still) to write the warning's text; never over clients.
    for advisor in over.itertuples(index=False):
        territories = sorted(set(advisor.territories) & set(by_territory.index))
        groups = by_territory.loc[territories].drop_duplicates("overflow_group")
        detail = "; ".join(
            f"{'+'.join(g.group_territories)}: {g.group_clients} clients for {g.group_free_capacity} free "
            f"capacity ({g.group_advisors} advisors), overflow {g.overflow}"
            for g in groups.itertuples()  # the advisor's overflowing groups: one or two
        )
        rows.append(
            {
                "advisor_email": advisor.advisor_email,
                "capacity": advisor.capacity,
                "load": advisor.load,
                "utilisation": advisor.utilisation,
                "over_by": advisor.load - advisor.capacity,
                "over_capacity_territories": territories,
                "cause": "territory_over_capacity" if territories else "pinned_over_capacity",
                "detail": detail or f"{advisor.pinned} pinned clients for capacity {advisor.capacity}",
            }
        )
    columns = ["advisor_email", "capacity", "load", "utilisation", "over_by", "over_capacity_territories", "cause", "detail"]
    return pd.DataFrame(rows, columns=columns)


# --- advisors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AdvisorBook:
    """The advisors as arrays, sorted by e-mail (the order every tie is broken in)."""

    frame: pd.DataFrame
    emails: np.ndarray
    index: pd.Index
    capacity: np.ndarray
    active: np.ndarray

    @staticmethod
    def of(advisors: pd.DataFrame) -> _AdvisorBook:
        frame = advisors.sort_values("advisor_email", kind="stable").reset_index(drop=True)
        duplicated = frame["advisor_email"][frame["advisor_email"].duplicated()]
        if len(duplicated):
            raise ValueError(f"advisor_email must be unique; repeated: {sorted(set(duplicated))}")
        capacity = frame["capacity"].to_numpy()
        if len(capacity) and (pd.isna(capacity).any() or (capacity < 0).any()):
            raise ValueError("advisor capacity must be a whole number >= 0 for every advisor")
        emails = frame["advisor_email"].to_numpy(dtype=object)
        return _AdvisorBook(
            frame=frame,
            emails=emails,
            index=pd.Index(emails),
            capacity=capacity.astype(np.int64),
            active=frame["active"].to_numpy(dtype=bool),
        )

    def serves_matrix(self, territory_ids: np.ndarray) -> np.ndarray:
        serves = np.zeros((len(territory_ids), len(self.emails)), dtype=bool)
        for a, served in enumerate(self.territory_lists()):  # one pass per advisor
            serves[:, a] = np.isin(territory_ids, served)
        return serves

    def territory_lists(self) -> list[list[str]]:
        """Each advisor's territories, sorted (a missing list serves nothing)."""
        return [sorted(v) if isinstance(v, (list, tuple, set, np.ndarray)) else [] for v in self.frame["territories"]]

    def loads(self, pinned: np.ndarray, kept: np.ndarray, load: np.ndarray) -> pd.DataFrame:
        with np.errstate(divide="ignore", invalid="ignore"):
            utilisation = np.where(self.capacity > 0, load / np.maximum(self.capacity, 1), np.where(load > 0, np.inf, 0.0))
        return pd.DataFrame(
            {
                "advisor_email": self.emails,
                "advisor_name": self.frame["advisor_name"].to_numpy(dtype=object),
                "territories": self.territory_lists(),
                "active": self.active,
                "capacity": self.capacity,
                "pinned": pinned,
                "kept": kept,
                "assigned": load - pinned - kept,
                "load": load,
                "utilisation": utilisation,
            }
        )


def _emails(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """E-mails as an object array with None for missing or empty, and where they are missing."""
    values = column.to_numpy(dtype=object, copy=True)
    missing = pd.isna(values) | (values == "")
    values[missing] = None
    return values, missing


# --- the aggregate problem (territories x advisors) -----------------------------------------------


def _pair_counts(t: np.ndarray, a: np.ndarray, n_t: int, n_a: int) -> np.ndarray:
    return np.bincount(t * n_a + a, minlength=n_t * n_a).reshape(n_t, n_a)


def _solve(c, a_ub=None, b_ub=None, a_eq=None, b_eq=None, bounds=(0, None), method="highs"):
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method=method)
    if res.status != 0:  # every LP here is feasible by construction; anything else is a bug to surface
        raise RuntimeError(f"advisor capacity LP failed: {res.message}")
    return res


def _incidence(lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row (territory) and column (advisor) incidence matrices of the lanes, one variable per lane."""
    lane_t, lane_a = np.nonzero(lanes)
    rows = (np.arange(lanes.shape[0])[:, None] == lane_t[None, :]).astype(float)
    cols = (np.arange(lanes.shape[1])[:, None] == lane_a[None, :]).astype(float)
    return lane_t, lane_a, rows, cols


def _over_capacity_groups(demand: np.ndarray, free: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The territories over capacity as a whole, and their advisors.

    A maximum flow (territory -> advisor, capped by each advisor's free capacity) leaves some
    territories unsatisfied; the territories reachable from them by alternating paths (an advisor
    of theirs that carries flow of another territory) are the smallest group whose demand exceeds
    the free capacity of all the advisors serving it. Every such advisor is full in every maximum
    flow; every other territory fits within the other advisors.
    """
    n_t, n_a = eligible.shape
    lanes = eligible & (demand > 0)[:, None]
    flow = np.zeros((n_t, n_a))
    if lanes.any():
        lane_t, lane_a, rows, cols = _incidence(lanes)
        res = _solve(
            -np.ones(len(lane_t)),
            a_ub=np.vstack([rows, cols]),
            b_ub=np.concatenate([demand, free]).astype(float),
            method="highs-ds",  # a vertex: integral, as the constraint matrix is a network's
        )
        flow[lane_t, lane_a] = res.x
    unsatisfied = demand - flow.sum(axis=1) > 0.5
    over_t = unsatisfied.copy()
    while True:
        over_a = cast(np.ndarray, eligible[over_t].any(axis=0))  # any along axis 0 of a 2-D array: a 1-D array
        grown = over_t | (flow[:, over_a] > 0.5).any(axis=1)
        if (grown == over_t).all():
            return over_t, over_a
        over_t = grown


def _fewest_moves(kept: np.ndarray, demand: np.ndarray, free: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """How many kept clients each (territory, advisor) keeps so that every client fits, with the fewest moves.

    Usually all of them. But kept clients can crowd out a territory whose only advisor also serves
    another territory with other advisors; then this LP (maximise the clients kept, subject to
    every territory's clients fitting within free capacity) says which advisors let some go. The
    arguments are already restricted to the territories and advisors that fit (zero elsewhere);
    the constraint matrix is a network's, so the optimal vertex is whole.
    """
    result = kept.copy()
    if kept.sum() == 0:
        return result
    x_t, x_a = np.nonzero(eligible & (demand > 0)[:, None] & (free > 0)[None, :])
    y_t, y_a = np.nonzero(kept > 0)
    lane_t, lane_a = np.concatenate([x_t, y_t]), np.concatenate([x_a, y_a])
    fit_rows, fit_cols = np.flatnonzero(demand > 0), np.flatnonzero(free > 0)
    res = _solve(
        np.concatenate([np.zeros(len(x_t)), -np.ones(len(y_t))]),
        a_ub=(fit_cols[:, None] == lane_a[None, :]).astype(float),
        b_ub=free[fit_cols].astype(float),
        a_eq=(fit_rows[:, None] == lane_t[None, :]).astype(float),
        b_eq=demand[fit_rows].astype(float),
        bounds=[(0, None)] * len(x_t) + [(0, float(k)) for k in kept[y_t, y_a]],
        method="highs-ds",
    )
    result[y_t, y_a] = np.rint(res.x[len(x_t) :]).astype(np.int64)
    return result


def _balanced_flows(
    demand: np.ndarray, fixed: np.ndarray, capacity: np.ndarray, room: np.ndarray, lanes: np.ndarray
) -> tuple[np.ndarray, float]:
    """Fractional flows [T, A] that place every territory's demand with lexicographically minimal utilisation.

    Round 1 minimises z, the largest (fixed + flow) / capacity among the advisors that can take
    clients, subject to the hard caps (``room``, infinite inside over-capacity groups); z* is the
    bound reported. An advisor whose z-constraint has a non-zero dual is at z in every optimum
    (complementary slackness), so it is frozen there and the next round minimises the others'
    maximum. At least one advisor freezes per round, so there are at most as many rounds as
    advisors (a few LPs of ~100 variables each).
    """
    n_t, n_a = lanes.shape
    flows = np.zeros((n_t, n_a))
    if not lanes.any():
        return flows, 0.0
    lane_t, lane_a, rows, cols = _incidence(lanes)
    taking = np.flatnonzero(lanes.any(axis=0))
    cap = capacity[taking].astype(float)
    base = fixed[taking].astype(float)
    hard = room[taking]
    level = np.full(len(taking), np.nan)  # frozen utilisation, NaN while free
    n_x = len(lane_t)
    cost = np.zeros(n_x + 1)
    cost[-1] = 1.0
    a_eq = np.hstack([rows[demand > 0], np.zeros(((demand > 0).sum(), 1))])
    b_eq = demand[demand > 0].astype(float)
    take_cols = cols[taking]
    capped = np.isfinite(hard)
    a_cap = np.hstack([take_cols[capped], np.zeros((capped.sum(), 1))])
    b_cap = hard[capped].astype(float)
    z_star = None
    while np.isnan(level).any():
        free_ = np.isnan(level)
        a_z = np.hstack([take_cols[free_], -cap[free_][:, None]])
        b_z = -base[free_]
        a_frozen = np.hstack([take_cols[~free_], np.zeros(((~free_).sum(), 1))])
        b_frozen = level[~free_] * cap[~free_] - base[~free_] + 1e-7 * cap[~free_]  # within the solver's tolerance
        res = _solve(
            cost,
            a_ub=np.vstack([a_z, a_frozen, a_cap]),
            b_ub=np.concatenate([b_z, b_frozen, b_cap]),
            a_eq=a_eq,
            b_eq=b_eq,
        )
        z = res.x[-1]
        z_star = z if z_star is None else z_star
        duals = res.ineqlin.marginals[: free_.sum()]
        bottleneck = duals < -1e-9
        if not bottleneck.any():  # degenerate duals: fall back to the primal's tight constraints
            load = base[free_] + take_cols[free_] @ res.x[:n_x]
            bottleneck = load >= z * cap[free_] - _TOL
        if not bottleneck.any():  # cannot happen at an optimum; never loop forever
            bottleneck[:] = True
        frozen_now = np.flatnonzero(free_)[bottleneck]
        level[frozen_now] = z
        flows[lane_t, lane_a] = res.x[:n_x]
    assert z_star is not None  # the loop runs at least once: lanes.any() leaves some advisor free
    return flows, float(z_star)


def _round_flows(flows: np.ndarray, demand: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Whole clients per (territory, advisor): largest remainders first, territory totals exact.

    Each lane gets the floor or the ceiling of its flow and each advisor at most the ceiling of its
    fractional total, so no advisor exceeds a capacity the LP respects nor its LP load by a whole
    client. A greedy pass can paint itself into a corner when advisors are shared, so the choice of
    which lanes round up is itself a tiny LP: maximise the remainders rounded up (largest remainder)
    under those bounds; its matrix is a network's, so the optimum is whole.
    """
    counts = np.floor(flows + _TOL).astype(np.int64)
    short = demand - counts.sum(axis=1)
    if (short < 0).any():
        raise RuntimeError("advisor capacity: LP flows exceed a territory's clients")
    if not (short > 0).any():
        return counts
    remainder = np.where(flows - counts > _TOL, flows - counts, 0.0)
    lanes = remainder > 0
    lane_t, lane_a, rows, cols = _incidence(lanes)
    column_total = flows.sum(axis=0)
    ceiling = np.minimum(np.ceil(column_total - _TOL), np.where(np.isfinite(room), room, np.inf)) - counts.sum(axis=0)
    res = _solve(
        -remainder[lane_t, lane_a],
        a_ub=cols,
        b_ub=ceiling.astype(float),
        a_eq=rows,
        b_eq=short.astype(float),
        bounds=(0, 1),
        method="highs-ds",
    )
    counts[lane_t, lane_a] += np.rint(res.x).astype(np.int64)
    return counts


# --- clients --------------------------------------------------------------------------------------


def _rank_within(group: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each row's 0-based rank by client_key within its group (deterministic whatever the row order)."""
    order = np.argsort(keys.astype(str), kind="stable")
    order = order[np.argsort(group[order], kind="stable")]
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1]
    run = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - run
    return rank


def _hand_out(t: np.ndarray, current: np.ndarray, may_return: np.ndarray, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concrete advisors for the clients to place, given whole clients per (territory, advisor).

    A client that had to leave an advisor for lack of room goes back to it first if the flows give
    that advisor clients of its territory after all (no needless move). The rest, sorted by
    territory then client_key, take the advisors in e-mail order, ``counts[t, a]`` each.
    """
    n_t, n_a = counts.shape
    advisor = np.full(len(t), -1, dtype=np.int64)
    remaining = counts.copy()
    back = may_return & (counts[t, np.where(current >= 0, current, 0)] > 0)
    if back.any():
        rows = np.flatnonzero(back)
        pair = t[rows] * n_a + current[rows]
        rank = _rank_within(pair, keys[rows])
        returns = rows[rank < counts.ravel()[pair]]
        advisor[returns] = current[returns]
        remaining -= _pair_counts(t[returns], current[returns], n_t, n_a)
    rest = np.flatnonzero(advisor < 0)
    order = rest[np.argsort(keys[rest].astype(str), kind="stable")]
    order = order[np.argsort(t[order], kind="stable")]
    sequence = np.repeat(np.tile(np.arange(n_a), n_t), remaining.ravel())
    if len(sequence) != len(order):  # the flows place exactly each territory's clients
        raise RuntimeError("advisor capacity: rounded flows do not match the clients to place")
    advisor[order] = sequence
    return advisor


def _over_capacity_table(
    territory_ids: np.ndarray,
    over_t: np.ndarray,
    demand: np.ndarray,
    eligible: np.ndarray,
    capacity: np.ndarray,
    free: np.ndarray,
) -> pd.DataFrame:
    rows = []
    pending = over_t.copy()
    while pending.any():  # one group of territories sharing advisors per pass
        group = np.zeros_like(pending)
        group[np.flatnonzero(pending)[0]] = True
        while True:
            grown = over_t & eligible[:, eligible[group].any(axis=0)].any(axis=1) | group
            if (grown == group).all():
                break
            group = grown
        pending &= ~group
        group_advisors = eligible[group].any(axis=0)
        numbers = {
            "group_territories": list(territory_ids[group]),
            "group_clients": int(demand[group].sum()),
            "group_advisors": int(group_advisors.sum()),
            "group_capacity": int(capacity[group_advisors].sum()),
            "group_free_capacity": int(free[group_advisors].sum()),
        }
        for ti in np.flatnonzero(group):
            mine = eligible[ti]
            rows.append(
                {
                    "territory_id": territory_ids[ti],
                    "clients": int(demand[ti]),
                    "advisors": int(mine.sum()),
                    "capacity": int(capacity[mine].sum()),
                    "free_capacity": int(free[mine].sum()),
                    **numbers,
                    "overflow": numbers["group_clients"] - numbers["group_free_capacity"],
                }
            )
    table = pd.DataFrame(rows, columns=OVER_CAPACITY_COLUMNS)
    return table.sort_values("territory_id", kind="stable").reset_index(drop=True)


def clients_of_advisors(assignments_fact: pd.DataFrame, advisor_emails: pd.Series, client_dim: pd.DataFrame) -> pd.DataFrame:
    """The clients ``advisor_emails`` hold now (current PRIMARY rows): client_key, client_name, territory_id,
    primary_advisor_email, advisor_reason; one row per client, by client_key.

    What the capacity check lists under "which clients?": those of the advisors over capacity.
    """
    fact = assignments_fact
    held = fact["is_current"] & (fact["assignment_type"] == "PRIMARY") & fact["primary_advisor_email"].isin(advisor_emails)
    names = client_dim.set_index("client_key")["client_name"]
    rows = fact.loc[held].assign(client_name=lambda d: d["client_key"].map(names))
    columns = ["client_key", "client_name", "territory_id", "primary_advisor_email", "advisor_reason"]
    return rows[columns].sort_values("client_key", kind="stable").reset_index(drop=True)
