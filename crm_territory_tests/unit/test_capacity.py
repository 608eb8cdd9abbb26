"""Advisor capacity: minimal disruption, overrides, reasons, balancing, coupling, the capacity guarantee.

Expected values are worked out by hand on small cases; a seeded randomised test checks the
guarantee against a brute-force oracle (Hall's condition over every set of territories).
"""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.placement.capacity import REASONS, _round_flows, advisor_warnings, assign_advisors


def advisors(*rows):
    """rows: (email, territories, capacity[, active])."""
    rows = [(e, list(ts), c, *(rest or [True])) for e, ts, c, *rest in rows]
    frame = pd.DataFrame(rows, columns=["advisor_email", "territories", "capacity", "active"])
    frame.insert(1, "advisor_name", frame["advisor_email"].str.split("@").str[0].str.upper())
    return frame


def clients(*rows):
    """rows: (client_key, territory_id, current_advisor[, pinned_advisor])."""
    rows = [(k, t, cur, *(rest or [None])) for k, t, cur, *rest in rows]
    return pd.DataFrame(rows, columns=["client_key", "territory_id", "current_advisor", "pinned_advisor"])


def new_clients(territory, n, prefix="c", current=None):
    return [(f"{prefix}{i:02d}", territory, current) for i in range(n)]


def by_client(result):
    table = result.assignments.set_index("client_key")
    return dict(zip(table.index, zip(table["advisor_email"], table["reason"])))


def load_of(result):
    return dict(zip(result.loads["advisor_email"], result.loads["load"]))


def test_a_client_keeps_its_current_advisor_when_allowed():
    result = assign_advisors(
        clients(("c1", "T1", "a@x"), ("c2", "T1", "b@x"), ("c3", "T1", "a@x")),
        advisors(("a@x", ["T1"], 5), ("b@x", ["T1"], 5)),
    )
    assert by_client(result) == {"c1": ("a@x", "kept"), "c2": ("b@x", "kept"), "c3": ("a@x", "kept")}
    assert load_of(result) == {"a@x": 2, "b@x": 1}
    assert result.over_capacity.empty
    assert advisor_warnings(result).empty


def test_result_rows_follow_the_input_and_use_known_reasons():
    frame = clients(("z9", "T1", None), ("a1", "T1", "a@x"))
    result = assign_advisors(frame, advisors(("a@x", ["T1"], 5)))
    assert list(result.assignments["client_key"]) == ["z9", "a1"]
    assert set(result.assignments["reason"]) <= set(REASONS)


def test_a_pinned_client_is_honoured_even_over_capacity_and_counts_in_the_load():
    result = assign_advisors(
        clients(
            ("p1", "T1", None, "a@x"),
            ("p2", "T1", "b@x", "a@x"),
            ("p3", "T2", None, "a@x"),  # a pin may even cross territories
            ("c1", "T1", "a@x"),  # a's own client: no room left after the pins
        ),
        advisors(("a@x", ["T1"], 2), ("b@x", ["T1"], 5)),
    )
    got = by_client(result)
    assert got["p1"] == got["p2"] == got["p3"] == ("a@x", "pinned")
    assert got["c1"] == ("b@x", "reassigned_over_capacity")
    assert load_of(result) == {"a@x": 3, "b@x": 1}
    warnings = advisor_warnings(result)
    assert list(warnings["advisor_email"]) == ["a@x"]
    assert warnings.loc[0, "cause"] == "pinned_over_capacity"
    assert warnings.loc[0, "over_by"] == 1


def test_a_pin_to_an_advisor_outside_the_advisor_list_is_still_honoured():
    result = assign_advisors(clients(("p1", "T1", None, "ghost@x")), advisors(("a@x", ["T1"], 5)))
    assert by_client(result) == {"p1": ("ghost@x", "pinned")}
    assert load_of(result) == {"a@x": 0}


def test_inactive_unknown_and_not_serving_advisors_cause_reassignment_with_the_reason():
    result = assign_advisors(
        clients(
            ("c1", "T1", "gone@x"),  # inactive
            ("c2", "T1", "nobody@x"),  # not in the advisor list
            ("c3", "T1", "t2only@x"),  # active, serves only T2
            ("c4", "T1", None),  # never had one
            ("c5", "T1", ""),  # an empty e-mail is no advisor
        ),
        advisors(("a@x", ["T1"], 10), ("gone@x", ["T1"], 10, False), ("t2only@x", ["T2"], 10)),
    )
    assert by_client(result) == {
        "c1": ("a@x", "reassigned_inactive"),
        "c2": ("a@x", "reassigned_unknown_advisor"),
        "c3": ("a@x", "reassigned_not_serving"),
        "c4": ("a@x", "assigned_new"),
        "c5": ("a@x", "assigned_new"),
    }


def test_excess_above_capacity_moves_in_client_key_order_whatever_the_row_order():
    rows = [("k3", "T1", "a@x"), ("k1", "T1", "a@x"), ("k4", "T1", "a@x"), ("k2", "T1", "a@x")]
    team = advisors(("a@x", ["T1"], 2), ("b@x", ["T1"], 5))
    expected = {
        "k1": ("a@x", "kept"),
        "k2": ("a@x", "kept"),
        "k3": ("b@x", "reassigned_over_capacity"),
        "k4": ("b@x", "reassigned_over_capacity"),
    }
    assert by_client(assign_advisors(clients(*rows), team)) == expected
    assert by_client(assign_advisors(clients(*reversed(rows)), team.iloc[::-1])) == expected


def test_new_clients_are_balanced_to_equal_utilisation():
    result = assign_advisors(clients(*new_clients("T1", 15)), advisors(("a@x", ["T1"], 10), ("b@x", ["T1"], 20)))
    assert load_of(result) == {"a@x": 5, "b@x": 10}
    assert result.lp_bound == pytest.approx(0.5)
    assert result.achieved == pytest.approx(0.5)
    assert result.gap == pytest.approx(0.0)
    # handed out in client_key order, advisors in e-mail order
    assert [by_client(result)[f"c{i:02d}"][0] for i in (0, 4, 5, 14)] == ["a@x", "a@x", "b@x", "b@x"]


def test_advisors_off_the_bottleneck_are_balanced_too():
    # a keeps 9 of 10: the maximum utilisation is 0.9 whatever happens to the 4 new clients, yet they
    # are split 2 / 2 between b and c rather than anyhow (lexicographic min-max).
    result = assign_advisors(
        clients(*new_clients("T1", 9, prefix="k", current="a@x"), *new_clients("T1", 4)),
        advisors(("a@x", ["T1"], 10), ("b@x", ["T1"], 10), ("c@x", ["T1"], 10)),
    )
    assert load_of(result) == {"a@x": 9, "b@x": 2, "c@x": 2}
    assert result.lp_bound == pytest.approx(0.9)
    assert result.achieved == pytest.approx(0.9)


def test_advisors_serving_several_territories_couple_them():
    # a serves T1 and T2 (capacity 10), b only T2 (capacity 20). T1's 4 clients can only go to a;
    # balancing T2 alone would split its 14 clients 14*10/30 : 14*20/30 and leave a at 0.87.
    # Jointly: 18 clients for 30 capacity, 0.6 each: a takes T1's 4 and 2 of T2, b the other 12.
    result = assign_advisors(
        clients(*new_clients("T1", 4, prefix="x"), *new_clients("T2", 14, prefix="y")),
        advisors(("a@x", ["T1", "T2"], 10), ("b@x", ["T2"], 20)),
    )
    assert load_of(result) == {"a@x": 6, "b@x": 12}
    assignments = result.assignments
    assert (assignments.loc[assignments["client_key"].str.startswith("x"), "advisor_email"] == "a@x").all()
    assert result.lp_bound == pytest.approx(0.6)
    assert result.achieved == pytest.approx(0.6)


def test_kept_clients_make_room_for_a_territory_with_no_other_advisor_with_the_fewest_moves():
    # a (capacity 2) holds two T2 clients; T1's new client has no advisor but a. T2 can go to b, so
    # exactly one of a's clients moves (the later key), and nobody ends over capacity.
    result = assign_advisors(
        clients(("k1", "T2", "a@x"), ("k2", "T2", "a@x"), ("n1", "T1", None)),
        advisors(("a@x", ["T1", "T2"], 2), ("b@x", ["T2"], 5)),
    )
    assert by_client(result) == {
        "k1": ("a@x", "kept"),
        "k2": ("b@x", "reassigned_over_capacity"),
        "n1": ("a@x", "assigned_new"),
    }
    assert result.over_capacity.empty


def test_over_capacity_is_spread_in_proportion_to_capacity_and_reported_with_numbers():
    result = assign_advisors(clients(*new_clients("T1", 45)), advisors(("a@x", ["T1"], 10), ("b@x", ["T1"], 20)))
    assert load_of(result) == {"a@x": 15, "b@x": 30}  # 1.5 x capacity each
    row = result.over_capacity.iloc[0]
    assert len(result.over_capacity) == 1
    assert (row["territory_id"], row["clients"], row["advisors"], row["capacity"], row["overflow"]) == ("T1", 45, 2, 30, 15)
    assert result.lp_bound == pytest.approx(1.5)
    warnings = advisor_warnings(result)
    assert list(warnings["advisor_email"]) == ["a@x", "b@x"]
    assert list(warnings["over_by"]) == [5, 10]
    assert set(warnings["cause"]) == {"territory_over_capacity"}
    assert warnings.loc[0, "detail"] == "T1: 45 clients for 30 free capacity (2 advisors), overflow 15"


def test_only_the_overflowing_group_goes_over_capacity():
    # T1 has 12 clients for a (5) and b (5). b also serves T2, which fits with c: T2's clients, even
    # the one b held, go to c; a and b share T1's overflow, 6 each; c stays within capacity.
    result = assign_advisors(
        clients(*new_clients("T1", 12, prefix="x"), ("y1", "T2", "b@x"), ("y2", "T2", None), ("y3", "T2", None)),
        advisors(("a@x", ["T1"], 5), ("b@x", ["T1", "T2"], 5), ("c@x", ["T2"], 10)),
    )
    assert load_of(result) == {"a@x": 6, "b@x": 6, "c@x": 3}
    assert by_client(result)["y1"] == ("c@x", "reassigned_over_capacity")
    over = result.over_capacity
    assert list(over["territory_id"]) == ["T1"]
    assert (over.loc[0, "group_clients"], over.loc[0, "group_free_capacity"], over.loc[0, "overflow"]) == (12, 10, 2)
    assert list(advisor_warnings(result)["advisor_email"]) == ["a@x", "b@x"]


def test_territories_sharing_advisors_are_over_capacity_together():
    # a alone serves T1 and T2 (capacity 10): each territory alone would fit (8), together they do not.
    result = assign_advisors(
        clients(*new_clients("T1", 8, prefix="x"), *new_clients("T2", 8, prefix="y")),
        advisors(("a@x", ["T1", "T2"], 10)),
    )
    over = result.over_capacity
    assert list(over["territory_id"]) == ["T1", "T2"]
    assert list(over["clients"]) == [8, 8]
    assert list(over["group_territories"]) == [["T1", "T2"], ["T1", "T2"]]
    assert set(over["overflow"]) == {6}
    assert load_of(result) == {"a@x": 16}
    assert advisor_warnings(result).loc[0, "detail"] == "T1+T2: 16 clients for 10 free capacity (1 advisors), overflow 6"


def test_a_territory_without_an_active_advisor_leaves_its_clients_without_one():
    result = assign_advisors(
        clients(("c1", "T9", "gone@x"), ("c2", "T9", None), ("c3", "T1", None)),
        advisors(("a@x", ["T1"], 5), ("gone@x", ["T9"], 5, False)),
    )
    got = by_client(result)
    assert got["c1"] == (None, "no_advisor_for_territory")
    assert got["c2"] == (None, "no_advisor_for_territory")
    assert got["c3"] == ("a@x", "assigned_new")
    row = result.over_capacity.set_index("territory_id").loc["T9"]
    assert (row["clients"], row["advisors"], row["capacity"], row["overflow"]) == (2, 0, 0, 2)
    assert advisor_warnings(result).empty


def test_rounding_keeps_territory_totals_and_never_breaks_a_capacity_the_flows_respect():
    # Two territories of one client each, half to advisor 0 and half to advisor 1, each with room for
    # one: rounding each territory on its own would send both to advisor 0.
    flows = np.array([[0.5, 0.5], [0.5, 0.5]])
    counts = _round_flows(flows, demand=np.array([1, 1]), room=np.array([1.0, 1.0]))
    assert counts.sum(axis=1).tolist() == [1, 1]
    assert counts.sum(axis=0).tolist() == [1, 1]
    # largest remainder first
    counts = _round_flows(np.array([[1.7, 1.3]]), demand=np.array([3]), room=np.array([np.inf, np.inf]))
    assert counts.tolist() == [[2, 1]]


def test_duplicate_advisor_emails_are_refused():
    with pytest.raises(ValueError, match="repeated"):
        assign_advisors(clients(("c1", "T1", None)), advisors(("a@x", ["T1"], 1), ("a@x", ["T1"], 2)))


# --- the capacity guarantee on random instances ---------------------------------------------------


def random_instance(rng):
    """A small random problem: 1-4 territories, 1-5 advisors, up to 40 clients, pins, odd advisors."""
    n_t, n_a = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    territories = [f"T{i}" for i in range(n_t)]
    emails = [f"a{i}@x" for i in range(n_a)]
    team = advisors(
        *(
            (
                emails[i],
                list(rng.choice(territories, size=int(rng.integers(1, min(3, n_t) + 1)), replace=False)),
                int(rng.integers(0, 16)),
                bool(rng.random() > 0.15),
            )
            for i in range(n_a)
        )
    )
    n = int(rng.integers(0, 41))
    pool = np.array([*emails, "ghost@x", None, None], dtype=object)
    current = pool[rng.integers(0, len(pool), n)]
    pinned = np.where(rng.random(n) < 0.08, pool[rng.integers(0, len(pool) - 2, n)], None)
    frame = pd.DataFrame(
        {
            "client_key": pd.Series([f"k{i:03d}" for i in rng.permutation(n)], dtype=object),
            "territory_id": rng.choice(territories, size=n),
            "current_advisor": current,
            "pinned_advisor": pinned,
        }
    )
    return frame, team


def hall_oracle(frame, team):
    """The smallest set of territories with the largest deficiency (clients - free capacity), by brute force."""
    usable = team[team["active"] & (team["capacity"] > 0)]
    pinned_load = frame["pinned_advisor"].value_counts()
    free = {e: max(c - int(pinned_load.get(e, 0)), 0) for e, c in zip(usable["advisor_email"], usable["capacity"])}
    serving = {e: set(ts) for e, ts in zip(usable["advisor_email"], usable["territories"])}
    wanting = frame[frame["pinned_advisor"].isna()]["territory_id"].value_counts()
    territories = sorted(wanting.index)

    def deficiency(subset):
        advisors_of = {e for e, ts in serving.items() if ts & set(subset)}
        return sum(int(wanting[t]) for t in subset) - sum(free[e] for e in advisors_of)

    subsets = [s for r in range(len(territories) + 1) for s in combinations(territories, r)]
    best = max(deficiency(s) for s in subsets)
    if best <= 0:
        return set(), 0
    maximisers = [set(s) for s in subsets if deficiency(s) == best]
    return set.intersection(*maximisers), best


def check_guarantee(frame, team, result):
    a = result.assignments.merge(frame, on="client_key")
    usable = team[team["active"] & (team["capacity"] > 0)]
    serves = {(t, e) for e, ts in zip(usable["advisor_email"], usable["territories"]) for t in ts}
    served = {t for t, _ in serves}
    free_row = a["pinned_advisor"].isna()

    # pins are honoured; everyone else in a served territory gets an active advisor serving it
    assert (a.loc[~free_row, "advisor_email"] == a.loc[~free_row, "pinned_advisor"]).all()
    in_served = free_row & a["territory_id"].isin(served)
    assert a.loc[in_served, "advisor_email"].notna().all()
    assert all((t, e) in serves for t, e in zip(a.loc[in_served, "territory_id"], a.loc[in_served, "advisor_email"]))
    assert (a.loc[free_row & ~in_served, "reason"] == "no_advisor_for_territory").all()
    assert a.loc[free_row & ~in_served, "advisor_email"].isna().all()
    # "kept" means exactly: same advisor as before, not an override
    assert ((a["reason"] == "kept") == (free_row & (a["advisor_email"] == a["current_advisor"]))).all()

    # over capacity as a whole, exactly as Hall's condition says
    expected_over, shortfall = hall_oracle(frame, team)
    over = result.over_capacity
    assert set(over["territory_id"]) == expected_over
    assert over["overflow"].gt(0).all()
    groups = over.assign(group=over["group_territories"].map(tuple)).drop_duplicates("group")
    assert groups["overflow"].sum() == shortfall

    # no advisor over capacity unless a territory it serves is over capacity (or its pins alone overflow it)
    loads = result.loads
    pinned_load = frame["pinned_advisor"].value_counts()
    for row in loads[loads["load"] > loads["capacity"]].itertuples():
        assert set(row.territories) & expected_over or pinned_load.get(row.advisor_email, 0) > row.capacity
    assert set(advisor_warnings(result)["advisor_email"]) == set(loads.loc[loads["load"] > loads["capacity"], "advisor_email"])

    # a client moved for lack of room left an advisor that is full
    moved = a.loc[a["reason"] == "reassigned_over_capacity", "current_advisor"]
    capacity = dict(zip(loads["advisor_email"], loads["capacity"]))
    load = dict(zip(loads["advisor_email"], loads["load"]))
    assert all(load[e] >= capacity[e] for e in moved)

    # the loads add up, and rounding stays within one client of the LP optimum
    assert loads["load"].sum() == a["advisor_email"].isin(loads["advisor_email"]).sum()
    assert result.lp_bound <= result.achieved + 1e-9
    positive = usable["capacity"]
    if len(positive):
        assert result.gap <= 1 / positive.min() + 1e-9


def test_capacity_guarantee_holds_on_random_instances():
    rng = np.random.default_rng(20261126)
    for _ in range(300):
        frame, team = random_instance(rng)
        check_guarantee(frame, team, assign_advisors(frame, team))
