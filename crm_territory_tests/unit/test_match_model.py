"""The comparisons file, m estimated by EM, and the match_model reused or re-estimated.

Expected values come from outside the code under test: the simulation's true m, today's constants, the
log2 arithmetic, and fingerprints of the outputs taken on the commit before this change (969e801).
"""

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.matching.client_dim import client_records
from crm_territory.logic.matching.comparisons import (
    DEFAULT_COMPARISONS,
    ComparisonsError,
    parse_comparisons,
    read_comparisons,
)
from crm_territory.logic.matching.decisions import MatchDecisions, parse_decisions
from crm_territory.logic.matching.estimation import estimate_m
from crm_territory.logic.matching.fields import Prior
from crm_territory.logic.matching.resolve import resolve
from crm_territory.schemas import MatchModel
from crm_territory_tests.support import utc
from crm_territory_tests.support.books import labelled_raw_clients
from crm_territory_tests.unit.test_optional_fields_matching import background, pair_row, raw

NOW = utc("2026-11-26")
REPO_ROOT = Path(__file__).resolve().parents[2]
# sha256 (16 hex) of client_xref + client_matches (sorted by pair) on the commit before this change
LABELLED_3000_SEED_11 = "fc417ee5df5fc3ea"


# columns client_matches gained after the fingerprint was taken: the score's parts, which add no decision
BREAKDOWN_COLUMNS = ["name_points", "region_points", "parent_org_points", "advisor_email_points", "advisor_domain_points"]


def fingerprint(resolution) -> str:
    h = hashlib.sha256(resolution.xref.to_csv(index=False).encode())
    # the columns came later: the score's parts, and the address (always empty on a book without addresses)
    matches = resolution.matches.drop(columns=[*BREAKDOWN_COLUMNS, "address_level", "address_points"])
    h.update(matches.sort_values(["record_a", "record_b"]).to_csv(index=False).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def labelled_records(reference):
    raw_clients, _ = labelled_raw_clients(3000, seed=11, now=NOW)
    return client_records(raw_clients, reference)


# --- the comparisons file ------------------------------------------------------------------------


def test_the_defaults_are_todays_constants_and_the_committed_file_is_the_defaults(tmp_path):
    assert DEFAULT_COMPARISONS.points_per_bit == 4.5 and DEFAULT_COMPARISONS.max_bits == 10
    assert DEFAULT_COMPARISONS.priors["tax_id"] == Prior(0.95, 0.03, 0.02)
    assert DEFAULT_COMPARISONS.priors["phone"] == Prior(0.70, 0.10, 0.20)
    assert DEFAULT_COMPARISONS.fields == ("tax_id", "date_of_birth", "postal_code", "domain", "phone", "address")
    assert read_comparisons(tmp_path / "missing.yaml") == DEFAULT_COMPARISONS
    committed = read_comparisons(REPO_ROOT / "data" / "matching" / "comparisons.yaml")
    assert committed.version == DEFAULT_COMPARISONS.version and committed.priors == DEFAULT_COMPARISONS.priors


def test_the_hand_set_points_resolve_a_book_without_optional_fields_exactly_as_before(labelled_records):
    """With the CRM fields' estimation off (their hand-set points), the outputs of the commit before the match
    model; by default their weights are estimated and the model says so, field by field."""
    hand_set = parse_comparisons("crm_fields: {estimate: false}", "c.yaml")
    resolution = resolve(labelled_records, MatchDecisions.none(), None, None, NOW, comparisons=hand_set)
    assert fingerprint(resolution) == LABELLED_3000_SEED_11
    assert set(resolution.model["m_source"]) == {"hand-set"}
    points = resolution.model.set_index(["field", "level"])["points"]
    assert points["region", "agree"] == 2 and points["region", "disagree"] == -15 and points["parent_org", "disagree"] == -20

    committed = read_comparisons(REPO_ROOT / "data" / "matching" / "comparisons.yaml")
    for comparisons in (DEFAULT_COMPARISONS, committed):
        estimated = resolve(labelled_records, MatchDecisions.none(), None, None, NOW, comparisons=comparisons)
        MatchModel.validate(estimated.model)
        assert set(estimated.model["field"]) == {"region", "parent_org", "advisor_email", "advisor_domain"}
        assert estimated.model_re_estimated and (estimated.model["m_source"] == "estimated").sum() >= 4  # 2 rows a field


def test_an_unknown_key_is_named_with_its_key_path():
    with pytest.raises(ComparisonsError, match=r"fields\.tax_id\.m\.exactt: unknown key 'exactt'"):
        parse_comparisons("fields:\n  tax_id:\n    m: {exact: 0.9, close: 0.05, different: 0.05, exactt: 1}\n", "c.yaml")
    with pytest.raises(ComparisonsError, match=r"fields\.passport: unknown field 'passport'"):
        parse_comparisons("fields:\n  passport: {compare: true}\n", "c.yaml")
    with pytest.raises(ComparisonsError, match=r"fields\.domain\.m: exact \+ close \+ different must sum to 1"):
        parse_comparisons("fields:\n  domain: {m: {exact: 0.9, close: 0.2, different: 0.1}}\n", "c.yaml")
    with pytest.raises(ComparisonsError, match="written twice"):
        parse_comparisons("max_bits: 10\nmax_bits: 12\n", "c.yaml")


def test_aliases_and_an_oversized_file_are_refused(tmp_path):
    with pytest.raises(ComparisonsError, match="anchors and aliases"):
        parse_comparisons("estimation: &e {enabled: true}\nother: *e\n", "c.yaml")
    big = tmp_path / "comparisons.yaml"
    big.write_text("# padding\n" * 20_000)
    with pytest.raises(ComparisonsError, match="may have at most 100,000 bytes"):
        read_comparisons(big)


# --- blocking passes, configured --------------------------------------------------------------------------


def test_blocking_passes_are_configured_in_order_and_unknown_ones_named(reference):
    # "Kelvora Nandi Trust" / "Trust Nandi Kelvora": no built-in pass pairs them (first words far apart, other
    # last words, the words reversed rather than one moved to the other end)
    rows = background(300, postal_code=lambda i: f"Z{i:05d}") + [
        {"client_id": "K1", "client_name": "Kelvora Nandi Trust", "postal_code": "EC1A 1BB"},
        {"client_id": "K2", "client_name": "Trust Nandi Kelvora", "postal_code": "ec1a-1bb"},
    ]
    records = client_records(raw(rows), reference)
    built_in = resolve(records, MatchDecisions.none(), None, None, NOW)
    assert list(built_in.stats["candidate_pairs_by_blocking_key"]) == [
        "same name", "same name without spaces", "same first word", "first word one edit apart",
        "same last word and postcode", "same words, one moved to the other end",
    ]  # fmt: skip
    assert not ((built_in.matches["record_a"] == "csv_drop:K1") & (built_in.matches["record_b"] == "csv_drop:K2")).any()

    own = parse_comparisons(
        "blocking:\n  passes:\n    - same name\n    - {name: same postcode, parts: [postal_code]}\n", "c.yaml"
    )
    assert own.version != DEFAULT_COMPARISONS.version  # other candidates: the model is estimated again
    resolution = resolve(records, MatchDecisions.none(), None, None, NOW, comparisons=own)
    assert resolution.stats["candidate_pairs_by_blocking_key"] == {"same name": 0, "same postcode": 1}
    row = pair_row(resolution, "K1", "K2")
    # the same words in another order: listed for review (token_sort_ratio 100), not merged
    assert row["blocked_by"] == "same postcode" and row["decision"] == "possible" and not row["merged"]

    with pytest.raises(ComparisonsError, match=r"passes\[1\]: unknown pass 'same nmae' \(built in: same name, "):
        parse_comparisons("blocking: {passes: [same name, same nmae]}", "c.yaml")
    with pytest.raises(ComparisonsError, match=r"blocking\.passes\[0\]\.parts\[0\]: Input should be 'name'"):
        parse_comparisons("blocking: {passes: [{name: pc, parts: [postcode]}]}", "c.yaml")
    with pytest.raises(ComparisonsError, match="listed twice"):
        parse_comparisons("blocking: {passes: [same name, same name]}", "c.yaml")


def _tax_id_pair_book():
    # 598 records with distinct tax ids and two that share one: EM has too few pairs (the prior stays)
    rows = background(598, tax_id=lambda i: f"9{i:07d}")
    rows += [
        {"client_id": "A1", "client_name": "Acme Holdings", "tax_id": "12-3456789"},
        {"client_id": "A2", "client_name": "ACME Hldgs International", "tax_id": "123456789"},
    ]
    return rows


def test_a_changed_prior_changes_the_points(reference):
    records = client_records(raw(_tax_id_pair_book()), reference)
    before = pair_row(resolve(records, MatchDecisions.none(), None, None, NOW), "A1", "A2")
    changed = parse_comparisons("fields:\n  tax_id: {m: {exact: 0.475, close: 0.03, different: 0.495}}\n", "c.yaml")
    resolution = resolve(records, MatchDecisions.none(), None, None, NOW, comparisons=changed)
    after = pair_row(resolution, "A1", "A2")
    assert before["tax_id_level"] == after["tax_id_level"] == "exact"
    # halving m(exact) costs one bit: 4.5 points (both under the 10-bit cap: one value held by 2 of 600 records)
    assert after["tax_id_points"] == pytest.approx(before["tax_id_points"] - 4.5, abs=0.02)
    model = resolution.model.set_index(["field", "level"])
    assert model.loc[("tax_id", "exact"), "m"] == 0.475 and model.loc[("tax_id", "exact"), "m_source"] == "prior"
    assert model.loc[("tax_id", "exact"), "m_note"]  # why the prior was kept is said
    # a field turned off is neither compared nor modelled
    off = resolve(
        records, MatchDecisions.none(), None, None, NOW, comparisons=parse_comparisons("fields: {tax_id: {compare: false}}", "c")
    )
    assert off.model.empty and not any(off.matches["tax_id_level"].notna())


# --- EM --------------------------------------------------------------------------------------------


def test_em_recovers_a_known_m_from_simulated_pairs():
    """60,000 pairs, 25% matches, three fields with known m and u (levels drawn independently given the class,
    as Fellegi-Sunter assumes) and 20-40% missing. EM starts from priors far from the truth. Tolerance: 0.02
    absolute on every m (the sampling error of a share of ~15,000 matches is under 0.005)."""
    rng = np.random.default_rng(5)
    n, share = 60_000, 0.25
    true_m = {"tax_id": [0.05, 0.05, 0.90], "date_of_birth": [0.10, 0.15, 0.75], "postal_code": [0.25, 0.15, 0.60]}
    true_u = {"tax_id": [0.97, 0.02, 0.01], "date_of_birth": [0.90, 0.07, 0.03], "postal_code": [0.70, 0.20, 0.10]}
    missing = {"tax_id": 0.4, "date_of_birth": 0.2, "postal_code": 0.3}
    is_match = rng.random(n) < share
    levels = {}
    for f in true_m:
        drawn_m = rng.choice(3, n, p=true_m[f])
        drawn_u = rng.choice(3, n, p=true_u[f])
        level = np.where(is_match, drawn_m, drawn_u).astype(np.int8)
        level[rng.random(n) < missing[f]] = -1
        levels[f] = level
    priors = {f: DEFAULT_COMPARISONS.priors[f] for f in true_m}
    u_start = {f: {"different": 0.98, "close": 0.01, "exact": 0.01} for f in true_m}
    estimate = estimate_m(levels, priors, u_start, max_iterations=500, tolerance=1e-7, min_pairs=200)
    assert estimate.converged and estimate.iterations < 500
    assert estimate.match_share == pytest.approx(share, abs=0.02)
    for f, m in true_m.items():
        assert estimate.source[f] == "estimated"
        got = estimate.m[f]
        assert [got.different, got.close, got.exact] == pytest.approx(m, abs=0.02), f


def test_em_keeps_the_prior_when_too_few_pairs_or_no_convergence():
    levels = {"tax_id": np.array([2, 2, 0, -1], dtype=np.int8)}
    priors = {"tax_id": Prior(0.95, 0.03, 0.02)}
    u = {"tax_id": {"exact": 0.01, "close": 0.01, "different": 0.98}}
    few = estimate_m(levels, priors, u, min_pairs=200)
    assert (
        few.m == priors
        and few.source == {"tax_id": "prior"}
        and "too few pairs have it on both records (3 < 200)" in few.note["tax_id"]
    )
    rng = np.random.default_rng(1)
    many = {"tax_id": rng.choice(3, 5000).astype(np.int8), "phone": rng.choice(3, 5000).astype(np.int8)}
    stuck = estimate_m(many, priors | {"phone": Prior(0.7, 0.1, 0.2)}, u | {"phone": u["tax_id"]}, max_iterations=1)
    assert not stuck.converged and set(stuck.source.values()) == {"prior"}
    assert "did not converge in 1 iterations" in stuck.note["tax_id"]


# --- the model: estimated, reused, re-estimated ----------------------------------------------------


def _people(n_people: int, with_dob: int, seed: int = 3) -> list[dict]:
    """Two records per person (a typo in the name half the time), postcode and date of birth; ``with_dob``
    people have a date of birth on both records."""
    rng = np.random.default_rng(seed)
    letters = "bcdfghjklmnpqrstvwxz"
    rows = []
    for i in range(n_people):
        word = "".join(letters[(i // 20**k) % 20] for k in range(4))
        name = f"{word.title()}a {word.title()}son"
        postcode = f"{2000 + i % 700}"
        dob = f"19{50 + i % 50:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}" if i < with_dob else None
        other = name if rng.random() < 0.5 else name[:-1] + "n"
        # the second record's postcode: a typo for 15%, another one for 10%; its date of birth 3 days off for 10%
        draw = rng.random()
        postcode_b = postcode[:-1] + "9" if draw < 0.15 and not postcode.endswith("9") else "7777" if draw > 0.9 else postcode
        dob_b = dob[:-2] + f"{int(dob[-2:]) % 28 + 1:02d}" if dob and rng.random() < 0.1 else dob
        rows.append({"client_id": f"P{i:05d}a", "client_name": name, "postal_code": postcode, "date_of_birth": dob})
        rows.append({"client_id": f"P{i:05d}b", "client_name": other, "postal_code": postcode_b, "date_of_birth": dob_b})
    return rows


def test_the_model_is_reused_on_the_same_book_and_re_estimated_when_a_field_coverage_jumps(reference):
    records = client_records(raw(_people(600, with_dob=300)), reference)
    first = resolve(records, MatchDecisions.none(), None, None, NOW)
    model = first.model
    MatchModel.validate(model)
    assert first.model_re_estimated and "first estimate" in first.model_reason
    assert set(model["field"]) == {"postal_code", "date_of_birth"} and len(model) == 6
    # EM (with the name's level telling the classes apart) finds how the people's second records were made
    # (_people): the date of birth the same for 90% and a day later for 10%; the postcode the same for 75%,
    # a digit changed for 15%, another for 10%
    m = model.set_index(["field", "level"])["m"]
    assert m["date_of_birth", "exact"] == pytest.approx(0.90, abs=0.04) and m["date_of_birth", "close"] == pytest.approx(
        0.10, abs=0.04
    )
    assert m["postal_code", "exact"] == pytest.approx(0.75, abs=0.04) and m["postal_code", "close"] == pytest.approx(
        0.15, abs=0.04
    )
    assert m["postal_code", "different"] == pytest.approx(0.10, abs=0.04)
    assert (model["m_source"] == "estimated").all() and model["em_converged"].all() and (model["em_iterations"] > 0).all()
    assert model["model_version"].nunique() == 1 and (model["estimated_at"] == NOW).all()

    later = utc("2026-11-27")
    second = resolve(records, MatchDecisions.none(), None, None, later, previous_model=model)
    assert not second.model_re_estimated and second.model_reason.startswith("reused the model estimated at 2026-11-26")
    assert second.model["model_version"].tolist() == model["model_version"].tolist()
    assert (second.model["estimated_at"] == NOW).all()  # the model keeps when it was estimated
    pd.testing.assert_frame_equal(second.matches, first.matches)

    # 300 -> 600 people with a date of birth: 600 -> 1,200 records having it, a 100% jump
    grown = client_records(raw(_people(600, with_dob=600)), reference)
    third = resolve(grown, MatchDecisions.none(), None, None, later, previous_model=model)
    assert third.model_re_estimated
    assert "records having date_of_birth changed by 100% (600 -> 1,200), more than 10%" in third.model_reason
    assert (third.model["estimated_at"] == later).all()

    # a changed comparisons file re-estimates too
    changed = parse_comparisons("estimation: {max_iterations: 99}", "c.yaml")
    fourth = resolve(records, MatchDecisions.none(), None, None, later, comparisons=changed, previous_model=model)
    assert fourth.model_re_estimated and "comparisons settings changed" in fourth.model_reason


def test_possible_matches_come_first_nearest_the_threshold(labelled_records):
    matches = resolve(labelled_records, MatchDecisions.none(), None, None, NOW).matches
    possible = matches["decision"] == "possible"
    assert possible.sum() > 5, "the book should leave some pairs for review"
    assert possible.iloc[: possible.sum()].all()  # the review list first
    distance = (matches.loc[possible, "score"] - 90).abs().to_numpy()
    assert (np.diff(distance) >= 0).all() and math.isfinite(distance[0])
    rest = matches[~possible]
    assert list(zip(rest["record_a"], rest["record_b"])) == sorted(zip(rest["record_a"], rest["record_b"]))


def _must_links(people: list[int]) -> MatchDecisions:
    return parse_decisions(
        pd.DataFrame(
            {
                "record_a": [f"csv_drop:P{i:05d}a" for i in people],
                "record_b": [f"csv_drop:P{i:05d}b" for i in people],
                "decision": "must_link",
            }
        ),
        "decisions.csv",
    )


def test_m_comes_from_the_human_decisions_when_enough_have_the_field(reference):
    rows = _people(900, with_dob=300)  # 1,800 records: 70 must-links stay under the guard's 5% of the book
    records = client_records(raw(rows), reference)
    by_id = {r["client_id"]: r for r in rows}
    # 60 people with a date of birth, none born on the 28th (whose second record's day wraps to the 1st)
    people = [i for i in range(300) if by_id[f"P{i:05d}a"]["date_of_birth"][-2:] != "28"][:60]
    first = resolve(records, _must_links(people), None, None, NOW)
    model = first.model.set_index(["field", "level"])
    assert (model["m_source"] == "human decisions").all() and (model["decision_pairs"] == 60).all()
    assert first.model_re_estimated

    # by hand, from the records: the second record's date of birth is the same or one day later (close);
    # its postcode the same, one digit changed (close), or 7777 (different); the prior counts as 10 pairs
    def level(field: str, a: str, b: str) -> str:
        return "exact" if a == b else "different" if field == "postal_code" and b == "7777" else "close"

    priors = {"date_of_birth": Prior(0.90, 0.07, 0.03), "postal_code": Prior(0.80, 0.08, 0.12)}
    for field, prior in priors.items():
        seen = pd.Series([level(field, by_id[f"P{i:05d}a"][field], by_id[f"P{i:05d}b"][field]) for i in people])
        for lv in ("exact", "close", "different"):
            expected = ((seen == lv).sum() + 10 * getattr(prior, lv)) / (60 + 10)
            assert model.loc[(field, lv), "m"] == pytest.approx(expected), (field, lv)
    assert "from 60 must-link pairs in the decisions file" in model.loc[("date_of_birth", "exact"), "m_note"]

    # the same decisions: the model is reused; ten more: estimated again, saying why
    again = resolve(records, _must_links(people), None, None, NOW, previous_model=first.model)
    assert not again.model_re_estimated
    more = [i for i in range(300) if by_id[f"P{i:05d}a"]["date_of_birth"][-2:] != "28"][:70]
    grown = resolve(records, _must_links(more), None, None, NOW, previous_model=first.model)
    assert grown.model_re_estimated and "the must-link pairs having date_of_birth changed (60 -> 70)" in grown.model_reason

    # fewer than min_decisions (50): EM's answer or the prior, not the humans'
    few = resolve(records, _must_links(people[:20]), None, None, NOW)
    assert "human decisions" not in set(few.model["m_source"]) and (few.model["decision_pairs"] == 20).all()
