"""Matching over the optional fields a source layout may give (tax id, date of birth, postcode, domain, phone).

A field no source gives changes nothing; one that both records of a pair have adds Fellegi–Sunter points,
shown per pair in client_matches; extra blocking passes find pairs the name alone would not.
"""

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.matching.blocking import blocking_keys, candidate_pairs
from crm_territory.logic.matching.client_dim import client_records
from crm_territory.logic.matching.decisions import MatchDecisions
from crm_territory.logic.matching.fields import (
    FIELDS,
    MAX_BITS,
    POINTS_PER_BIT,
    PRIORS,
    FieldEvidence,
    normalise_fields,
)
from crm_territory.logic.matching.quality import pair_quality
from crm_territory.logic.matching.resolve import match_features, resolve
from crm_territory.schemas import ClientMatches
from crm_territory.wiring.metadata import markdown_table
from crm_territory_tests.support import utc
from crm_territory_tests.support.books import labelled_raw_clients, raw_clients_frame

NOW = utc("2026-11-26")
NEW_MATCH_COLUMNS = [f"{f}_{part}" for f in FIELDS for part in ("level", "points")] + ["field_points"]


def raw(rows: list[dict]) -> pd.DataFrame:
    """A raw_clients-like frame: one version per record; rows give client_id, client_name and optional fields."""
    return raw_clients_frame(rows, NOW)


def background(n: int, **fields) -> list[dict]:
    """n records with names that pair with nothing and, per field, a distinct value each (callables of i)."""
    letters = "bcdfghjklmnpqrstvwxz"
    rows = []
    for i in range(n):
        word = "".join(letters[(i // 20**k) % 20] for k in range(4)) + "ovia"
        rows.append({"client_id": f"B{i:05d}", "client_name": f"{word.title()} Trust", **{k: f(i) for k, f in fields.items()}})
    return rows


def resolve_rows(reference, rows):
    records = client_records(raw(rows), reference)
    return records, resolve(records, MatchDecisions.none(), None, None, NOW)


def merged(resolution, a: str, b: str) -> bool:
    xref = resolution.xref
    key = dict(zip("csv_drop:" + xref["source_record_id"], xref["client_key"]))
    return key[f"csv_drop:{a}"] == key[f"csv_drop:{b}"]


def pair_row(resolution, a: str, b: str) -> pd.Series:
    m = resolution.matches
    low, high = sorted([f"csv_drop:{a}", f"csv_drop:{b}"])
    found = m[(m["record_a"] == low) & (m["record_b"] == high)]
    assert len(found) == 1, f"{a}/{b} not in client_matches"
    return found.iloc[0]


# ---------------------------------------------------------------------------------------------------------
# A field the sources do not have changes nothing
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_records(reference):
    return labelled_raw_clients(4_000, seed=11, now=NOW)


def test_empty_optional_columns_change_nothing_on_a_generated_book(reference, generated_records):
    raw_clients, _ = generated_records
    assert raw_clients["tax_id"].isna().all() and raw_clients["date_of_birth"].isna().all()
    with_columns = client_records(raw_clients, reference)
    assert set(FIELDS) <= set(with_columns.columns)
    without_columns = with_columns.drop(columns=list(FIELDS))  # what the name-only matcher saw
    before = resolve(without_columns, MatchDecisions.none(), None, None, NOW)
    after = resolve(with_columns, MatchDecisions.none(), None, None, NOW)
    pd.testing.assert_frame_equal(before.xref, after.xref)
    assert after.matches[NEW_MATCH_COLUMNS].isna().all().all()
    pd.testing.assert_frame_equal(before.matches.drop(columns=NEW_MATCH_COLUMNS), after.matches.drop(columns=NEW_MATCH_COLUMNS))
    assert after.stats["candidate_pairs"] == before.stats["candidate_pairs"]
    assert after.stats["candidate_pairs_by_blocking_key"] == before.stats["candidate_pairs_by_blocking_key"]
    assert list(after.stats["candidate_pairs_by_blocking_key"]) == [
        "same name", "same name without spaces", "same first word", "first word one edit apart"
    ]  # fmt: skip
    ClientMatches.validate(after.matches)


def test_raw_clients_without_the_optional_columns_resolve_as_with_them_empty(reference, generated_records):
    raw_clients, _ = generated_records
    dropped = raw_clients.drop(columns=["postal_code", "phone", "website", "email_domain", "tax_id", "date_of_birth"])
    a = resolve(client_records(raw_clients, reference), MatchDecisions.none(), None, None, NOW)
    b = resolve(client_records(dropped, reference), MatchDecisions.none(), None, None, NOW)
    pd.testing.assert_frame_equal(a.xref, b.xref)
    pd.testing.assert_frame_equal(a.matches, b.matches)


def test_the_generated_book_keeps_its_accuracy(reference, generated_records):
    raw_clients, book = generated_records
    resolution = resolve(client_records(raw_clients, reference), MatchDecisions.none(), None, None, NOW)
    xref = resolution.xref
    record = (xref["source_system"] + ":" + xref["source_record_id"]).to_numpy()
    truth = book.truth.assign(record=book.truth["source_system"] + ":" + book.truth["client_id"]).set_index("record")["entity_id"]
    quality = pair_quality(pd.Series(xref["client_key"].to_numpy(), index=record), truth.reindex(record))
    assert quality.f1 >= 0.95, quality


def test_every_score_is_the_sum_of_its_parts(reference, generated_records):
    """An analyst reads why two records merged from client_matches: the parts must add up to the score."""
    raw_clients, _ = generated_records
    # a generated book (names, regions, parents, advisors) and two records carrying a tax id
    records = pd.concat([client_records(raw_clients, reference), client_records(raw(with_tax_ids(50) + ACME), reference)])
    resolution = resolve(records.reset_index(drop=True), MatchDecisions.none(), None, None, NOW)
    m = resolution.matches
    assert len(m) > 100 and m["field_points"].notna().any()
    parts = m[["name_points", "region_points", "parent_org_points", "advisor_email_points", "advisor_domain_points"]]
    total = parts.sum(axis=1) + m["field_points"].fillna(0)
    assert np.allclose(total, m["score"], atol=0.011)
    # each field's points are the match model's for its agreement (the model the UI shows), 0 where either
    # record lacks the field; the model's own points are log2(m / u) bits at 4.5 points a bit, an agreement
    # capped at 5 bits, or the hand-set points where EM could not estimate the field
    model = resolution.model.set_index(["field", "level"])
    hand_set = {"region": (2, -15), "parent_org": (3, -20), "advisor_email": (2, -10), "advisor_domain": (1, -5)}
    for field, (agree, disagree) in hand_set.items():
        if model.loc[(field, "agree"), "m_source"] == "hand-set":
            assert model.loc[(field, "agree"), "points"] == agree and model.loc[(field, "disagree"), "points"] == disagree
        else:
            row = model.loc[(field, "agree")]
            assert row["points"] == pytest.approx(min(np.log2(row["m"] / row["u"]), 5) * 4.5, abs=0.01)
        weights = {"agree": model.loc[(field, "agree"), "points"], "disagree": model.loc[(field, "disagree"), "points"]}
        expected = m[f"{field}_agreement"].map(weights | {"unknown": 0.0})
        assert (m[f"{field}_points"] == expected).all(), field
    assert (model["m_source"] == "estimated").any()  # a 4,000-record book has pairs enough to estimate from
    # the name's part: its score, credited 95 where the names agree word by word
    agreeing = m["name_difference"].isin(["same words", "typo or abbreviation"])
    assert (m.loc[agreeing, "name_points"] == np.maximum(m.loc[agreeing, "name_score"], 95)).all()
    other = m["name_difference"] == "different words"
    assert other.any() and (m.loc[other, "name_points"] == m.loc[other, "name_score"]).all()


# ---------------------------------------------------------------------------------------------------------
# A field the sources have
# ---------------------------------------------------------------------------------------------------------

ACME = [
    {"client_id": "A1", "client_name": "Acme Holdings", "tax_id": "12-345-6789"},
    {"client_id": "A2", "client_name": "ACME Hldgs International", "tax_id": "123456789"},
]
NORTHWIND = [
    {"client_id": "N1", "client_name": "Northwind Trust", "tax_id": "98-765-4321"},
    {"client_id": "N2", "client_name": "Northwind Trust", "tax_id": "55-000-1234"},
]


def with_tax_ids(n=600):
    return background(n, tax_id=lambda i: f"{700000000 + i}")


def test_the_same_tax_id_merges_names_that_alone_would_not(reference):
    _, names_only = resolve_rows(reference, background(600) + [{k: v for k, v in r.items() if k != "tax_id"} for r in ACME])
    assert not merged(names_only, "A1", "A2")
    _, resolution = resolve_rows(reference, with_tax_ids() + ACME)
    assert merged(resolution, "A1", "A2")
    row = pair_row(resolution, "A1", "A2")
    assert row["tax_id_level"] == "exact" and row["blocked_by"] == "same first word"  # the tax id pass found it too
    # 2 of 602 records hold the id: log2(0.95 / (2/602)) bits at 4.5 points a bit, added to the name score
    expected = round(np.log2(0.95 / (2 / 602)) * POINTS_PER_BIT, 2)
    assert row["tax_id_points"] == pytest.approx(expected) and row["field_points"] == pytest.approx(expected)
    assert row["score"] == pytest.approx(row["name_score"] + expected, abs=0.02)
    assert row["decision"] == "match" and row["date_of_birth_level"] is None and np.isnan(row["phone_points"])


def test_the_resolution_reports_the_weights_it_used(reference, generated_records):
    _, resolution = resolve_rows(reference, with_tax_ids() + ACME)
    model = resolution.model
    weights = model[model["field"].isin(FIELDS)].reset_index(drop=True)  # the optional fields' rows of match_model
    assert set(weights["field"]) == {"tax_id"}
    assert list(weights["level"]) == ["exact", "close", "different"]
    assert list(weights["m_prior"]) == [0.95, 0.03, 0.02] and set(weights["records_with_field"]) == {602}
    # exact: the average over values, u = sum of squared shares (600 ids once, one twice)
    assert float(weights["u"].iloc[0]) == pytest.approx((600 + 4) / 602**2, rel=1e-2)
    assert weights["points"].iloc[2] == pytest.approx(round(weights["bits"].iloc[2] * POINTS_PER_BIT, 2), abs=0.02)
    assert weights["points"].iloc[2] < -20  # a different tax id
    assert "| tax_id" in markdown_table(weights)  # as match_model's metadata shows it
    raw_clients, _ = generated_records
    without = resolve(client_records(raw_clients, reference), MatchDecisions.none(), None, None, NOW).model
    assert not set(without["field"]) & set(FIELDS)


def test_a_different_tax_id_keeps_identical_names_apart(reference):
    _, names_only = resolve_rows(reference, background(600) + [{k: v for k, v in r.items() if k != "tax_id"} for r in NORTHWIND])
    assert merged(names_only, "N1", "N2")
    _, resolution = resolve_rows(reference, with_tax_ids() + NORTHWIND)
    assert not merged(resolution, "N1", "N2")


def test_a_tax_id_on_one_record_only_adds_nothing(reference):
    rows = with_tax_ids() + [NORTHWIND[0], {"client_id": "N2", "client_name": "Northwind Trust"}]
    _, resolution = resolve_rows(reference, rows)
    row = pair_row(resolution, "N1", "N2")
    assert merged(resolution, "N1", "N2") and row["tax_id_level"] is None and np.isnan(row["field_points"])
    assert row["score"] == pytest.approx(100.0)


def test_the_same_tax_id_does_not_link_an_unmatchable_name(reference):
    rows = with_tax_ids() + [ACME[0], {"client_id": "A2", "client_name": "北京资本管理有限公司", "tax_id": "123456789"}]
    _, resolution = resolve_rows(reference, rows)
    assert not merged(resolution, "A1", "A2")


def with_dates_of_birth(n=600):
    return background(n, date_of_birth=lambda i: str((pd.Timestamp("1940-01-01") + pd.Timedelta(days=37 * i)).date()))


JANE = [
    {"client_id": "J1", "client_name": "Jane Smith", "date_of_birth": "1983-07-14", "postal_code": "SW1A 1AA"},
    {"client_id": "J2", "client_name": "Smith Jaen", "date_of_birth": "1983-07-14", "postal_code": "SW1A1AA"},
]


def test_the_same_date_of_birth_merges_a_person_whose_name_is_swapped_and_mistyped(reference):
    _, names_only = resolve_rows(
        reference, background(600) + [{k: v for k, v in r.items() if k == "client_id" or k == "client_name"} for r in JANE]
    )
    assert not merged(names_only, "J1", "J2")
    _, resolution = resolve_rows(reference, with_dates_of_birth() + JANE)
    row = pair_row(resolution, "J1", "J2")
    assert row["name_difference"] == "different words" and row["date_of_birth_level"] == "exact"
    assert row["postal_code_level"] == "exact" and row["decision"] == "match" and merged(resolution, "J1", "J2")


def test_a_different_date_of_birth_keeps_the_same_name_apart(reference):
    # nothing else agreeing: a rare postcode agreeing (+37 points) would outweigh the date (-23) on an identical name
    rows = [
        {"client_id": "J1", "client_name": "Jane Smith", "date_of_birth": "1983-07-14"},
        {"client_id": "J2", "client_name": "Jane Smith", "date_of_birth": "1961-02-28"},
    ]
    _, names_only = resolve_rows(
        reference, background(600) + [{"client_id": r["client_id"], "client_name": r["client_name"]} for r in rows]
    )
    assert merged(names_only, "J1", "J2")
    _, resolution = resolve_rows(reference, with_dates_of_birth() + rows)
    assert not merged(resolution, "J1", "J2")


def test_a_common_date_of_birth_agreeing_adds_less_than_a_rare_one():
    values = pd.DataFrame(
        {
            "date_of_birth": ["1970-01-01"] * 50
            + ["1983-07-14"] * 2
            + [f"19{50 + i // 12:02d}-{i % 12 + 1:02d}-15" for i in range(48)]
        }
    )
    evidence = FieldEvidence(values)
    out = evidence.compare(np.array([0, 50]), np.array([1, 51]))
    level, points = out["date_of_birth"]
    assert list(level) == ["exact", "exact"]
    assert points[0] == pytest.approx(round(np.log2(0.90 / 0.5) * POINTS_PER_BIT, 2))  # half the book: 3.8 points
    assert points[1] == pytest.approx(round(np.log2(0.90 / 0.02) * POINTS_PER_BIT, 2))  # 2 of 100: 24.7 points
    assert points[0] < points[1]


def test_an_agreement_counts_at_most_max_bits():
    evidence = FieldEvidence(pd.DataFrame({"tax_id": ["1234"] * 2 + [f"{5000 + i}" for i in range(20_000)]}))
    _, points = evidence.compare(np.array([0]), np.array([1]))["tax_id"]
    assert points[0] == pytest.approx(MAX_BITS * POINTS_PER_BIT)


def test_close_levels_dates_swapped_or_near_postcode_prefix_a_typo_in_an_id():
    values = pd.DataFrame(
        {
            "tax_id": ["123456789", "123456780", None, None, None, None],
            "date_of_birth": ["1980-03-04", "1980-04-03", "1980-03-06", "1990-01-01", None, None],
            "postal_code": ["SW1A1AA", "SW1B2BB", "EC1A1BB", None, None, None],
            "domain": ["acme.com", "acme.co", None, None, None, None],
            "phone": ["12125550100", "2125550100", None, None, None, None],
        }
    )
    out = FieldEvidence(values).compare(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]))
    assert list(out["tax_id"][0]) == ["close", None, None, None]
    assert list(out["date_of_birth"][0]) == ["close", "close", "different", None]  # swapped; 2 days apart
    assert list(out["postal_code"][0]) == ["close", "different", None, None]
    assert list(out["domain"][0]) == ["close", None, None, None]
    assert list(out["phone"][0]) == ["close", None, None, None]
    different = out["date_of_birth"][1][2]
    assert different < 0  # a date of birth that differs counts against


def test_normalisation_digits_dates_postcodes_domains():
    records = pd.DataFrame(
        {
            "tax_id": ["12-345-6789", "n/a", None],
            "date_of_birth": ["1980-03-04", "not a date", ""],
            "postal_code": ["sw1a 1aa", "10001-1234", " "],
            "email_domain": [None, "Acme.COM", None],
            "website": ["https://www.Acme.com/about", "http://other.org", "localhost"],
            "phone": ["+1 (212) 555-0100", "12", None],
        }
    )
    out = normalise_fields(records)
    assert out.to_dict("list") == {
        "tax_id": ["123456789", None, None],
        "date_of_birth": ["1980-03-04", None, None],
        "postal_code": ["SW1A1AA", "100011234", None],
        "domain": ["acme.com", "acme.com", None],
        "phone": ["12125550100", None, None],
        "address": [None, None, None],  # no address column: none
    }


# ---------------------------------------------------------------------------------------------------------
# Blocking passes
# ---------------------------------------------------------------------------------------------------------


def test_extra_passes_pair_records_the_names_never_would_and_each_pair_is_found_once():
    records = client_records_like(
        ["Jane Smith", "Smith Jane", "Acme Holdings", "Zenith Group", "Jane Smith"],
        date_of_birth=["1980-03-04", "1980-03-04", None, None, "1980-03-04"],
        postal_code=["SW1A1AA", "SW1A1AA", None, None, "SW1A1AA"],
        tax_id=[None, None, "123456789", "123456789", None],
    )
    features = match_features(records)
    found = candidate_pairs(blocking_keys(features["name"], features), len(records))
    pairs = dict(zip(zip(found.a.tolist(), found.b.tolist()), found.blocked_by))
    assert pairs[(0, 1)] == "same date of birth and postcode"  # given and family names swapped
    assert pairs[(2, 3)] == "same tax id"
    assert pairs[(0, 4)] == "same name"  # found by the name and by three passes: once, named by the first
    assert len(found) == len(set(zip(found.a.tolist(), found.b.tolist()))) == 4
    assert found.pairs_by_key["same date of birth and initial"] == 1  # jane smith x2
    assert found.pairs_by_key["same date of birth and postcode"] == 3
    assert found.pairs_by_key["same tax id"] == 1
    assert "same domain" not in found.pairs_by_key  # no record has one: no pass


def client_records_like(names, **fields) -> pd.DataFrame:
    n = len(names)
    frame = pd.DataFrame(
        {
            "record_key": [f"csv_drop:{i}" for i in range(n)],
            "client_name": names,
            "region": None,
            "parent_org": None,
            "primary_advisor_email": None,
        }
    )
    return pd.concat([frame, normalise_fields(pd.DataFrame(fields))], axis=1)


def test_priors_are_probabilities():
    for prior in PRIORS.values():
        assert prior.exact + prior.close + prior.different == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------
# Persons filed surname first, a mistyped tax id, a street address
# ---------------------------------------------------------------------------------------------------------


def test_a_name_filed_surname_first_is_the_same_words_but_not_with_a_typo_too():
    from crm_territory.logic.matching.scoring import name_difference

    left = np.array(["jane smith", "jane mary smith", "jane smith", "atlas capital", "jane smith"], dtype=object)
    right = np.array(["smith jane", "smith jane mary", "smith jaen", "capital atlas", "smith john"], dtype=object)
    # the pairs holding the same words in another order (score_pairs passes token_sort_ratio == 100)
    reordered = np.array([True, True, False, True, False])
    assert list(name_difference(left, right, reordered=reordered)) == [
        "same words", "same words", "different words", "same words", "different words"
    ]  # fmt: skip
    # no rotation is tried where the words are not the same (nor for parents, which pass none)
    assert list(name_difference(left, right)) == ["different words"] * 5


def test_swapped_names_and_mistyped_tax_ids_meet_in_a_book_with_optional_fields():
    names = pd.Series(["jane smith", "smith jane", "mary brown", "bob quinlan", "zed alpha"])
    fields = pd.DataFrame({"tax_id": [None, None, "1234567", "1234576", "7654321"]})
    found = candidate_pairs(blocking_keys(names, fields), len(names))
    assert dict(zip(zip(found.a.tolist(), found.b.tolist()), found.blocked_by)) == {
        (0, 1): "same words, one moved to the other end",
        (2, 3): "tax id one edit apart",
    }
    assert "same words, one moved to the other end" not in blocking_keys(names)  # a names-only book: as before


def test_addresses_are_normalised_and_a_retyped_one_is_close():
    out = normalise_fields(pd.DataFrame({"address": ["12 High St., Suite 4", "  ", "Flat-3/7 HIGH street", "x"]}))
    assert out["address"].tolist() == ["12 high st suite 4", None, "flat 3 7 high street", None]
    from crm_territory.logic.matching.fields import _close

    left = np.array(["15 goodwinstreet", "12 high st", "12 high st"], dtype=object)
    right = np.array(["15 goodwin street", "12 high st suite 4", "9 low road"], dtype=object)
    assert _close("address", left, right).tolist() == [True, True, False]
