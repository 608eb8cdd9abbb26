"""The mock book's planted duplicates and their truth: what entity-resolution benchmarks are scored against.

In-process only (no server): ``client_entities``, ``generate_drop`` and ``labelled_book`` next to
``generate_clients``. The rates asserted are the generator's stated ones, with room for sampling noise.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from crm_territory.schemas import CLIENT_ID_PATTERN
from mock_api import generator
from mock_api.generator import (
    API_DUPLICATE_RATE,
    CLIENT_COLUMNS,
    DROP_COLUMNS,
    DROP_DUPLICATE_RATE,
    REGION_SPELLINGS,
    SEGMENT_SPELLINGS,
    UNKNOWN_REGIONS,
    LabelledBook,
    client_entities,
    generate_clients,
    generate_drop,
    labelled_book,
    write_drop_csv,
)

N = 20_000
SEED = 42

# What a resolver would strip before comparing: every variation the generator plants except typos.
_SUFFIX = r"(?:,\s*|\s+)(?:l\.?l\.?c\.?|inc\.?|incorporated|ltd\.?|limited|corp\.?|corporation|co\.?|l\.?p\.?)$"
_ABBREVIATIONS = {
    r"\bptnrs\b\.?": "partners", r"\bmgmt\b\.?": "management", r"\bassocs?\b\.?": "associates",
    r"\badvisers\b": "advisors", r"\bgrp\b\.?": "group", r"\bhldgs\b\.?": "holdings", r"\bco\b\.?": "company",
    r"\bint'?l\b": "international", r"\bfin'?l\b": "financial",
    r"\binvest\b\.?": "investment", r"\binv\b\.?": "investment", r"\bstrat\b\.?": "strategies", r"\bcnsl\b\.?": "counsel",
}  # fmt: skip


def normalise(names: pd.Series) -> pd.Series:
    """Lower case, accents, "and", "The", legal suffix and punctuation removed: the name as an organisation, not a spelling."""
    out = names.fillna("").str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii").str.lower()
    out = out.str.replace(r"\s+", " ", regex=True).str.strip().str.rstrip(".")
    out = out.str.replace(_SUFFIX, "", regex=True).str.replace(r"^the ", "", regex=True)
    return out.str.replace(" & ", " and ", regex=False).str.replace(",", "", regex=False)


def expand(names: pd.Series, *, drop_company: bool = True) -> pd.Series:
    """``normalise`` plus abbreviations spelled out; a duplicate still differing from its original has a typo."""
    out = normalise(names)
    for short, word in _ABBREVIATIONS.items():
        out = out.str.replace(short, word, regex=True)
    out = out.str.replace(_SUFFIX, "", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    # "Co." is both "Company" shortened and a legal suffix: a trailing "company" means nothing either way.
    return out.str.replace(r" company$", "", regex=True) if drop_company else out


def edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent transpositions."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    """The API book with its truth and, per row, its organisation's first row (the original)."""
    frame = generate_clients(N, SEED).assign(entity_id=client_entities(N, SEED))
    first = frame.groupby("entity_id", sort=False)["client_id"].transform("first")
    return frame.assign(original_id=first, is_duplicate=first != frame["client_id"])


def test_everything_is_deterministic_and_depends_on_the_seed() -> None:
    pd.testing.assert_series_equal(client_entities(3000, 1), client_entities(3000, 1))
    pd.testing.assert_frame_equal(generate_drop(800, 1, api_clients=2000), generate_drop(800, 1, api_clients=2000))
    a, b = labelled_book(2000, 1), labelled_book(2000, 1)
    for part in ("api", "drop", "truth"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    assert not generate_drop(800, 2, api_clients=2000).equals(generate_drop(800, 1, api_clients=2000))
    assert not client_entities(3000, 2).equals(client_entities(3000, 1))
    # An organisation's name depends on (seed, organisation), not on the book's size.
    small = generate_clients(1000, 5).assign(entity_id=client_entities(1000, 5)).drop_duplicates("entity_id")
    large = generate_clients(4000, 5).assign(entity_id=client_entities(4000, 5)).drop_duplicates("entity_id")
    names_small = small.set_index("entity_id")["client_name"].replace("", None).dropna()
    names_large = large.set_index("entity_id")["client_name"].replace("", None).dropna()
    common = names_small.index.intersection(names_large.index)
    assert len(common) > 900 and (names_small[common] == names_large[common]).all()
    assert len(client_entities(0)) == 0 and len(generate_drop(0, api_clients=10)) == 0
    assert len(labelled_book(0).truth) == 0


def test_entity_ids_line_up_with_the_book(book: pd.DataFrame) -> None:
    entities = client_entities(N, SEED)
    assert entities.name == "entity_id" and entities.index.equals(generate_clients(N, SEED).index) and entities.dtype == object
    assert entities.str.fullmatch(r"E\d{7}").all()
    # Organisations are numbered in order of first appearance: a duplicate points back, never ahead.
    first_seen = entities[~entities.duplicated()]
    assert first_seen.tolist() == [f"E{i:07d}" for i in range(len(first_seen))]
    assert 0.75 * API_DUPLICATE_RATE < book["is_duplicate"].mean() < 1.25 * API_DUPLICATE_RATE
    # Duplicates spread over the whole book, not only the previous row.
    dup = book[book["is_duplicate"]]
    gap = dup["client_id"].astype(int) - dup["original_id"].astype(int)
    assert (gap > 0).all() and gap.median() > N / 10
    copies = book["entity_id"].value_counts()
    assert (copies[copies > 1] == 2).mean() > 0.9  # mostly one extra record, now and then more


def test_distinct_organisations_never_share_a_name(book: pd.DataFrame) -> None:
    originals = book[~book["is_duplicate"]]
    named = originals[originals["client_name"].fillna("") != ""]
    keys = normalise(named["client_name"])
    assert keys.is_unique, keys[keys.duplicated(keep=False)].head().tolist()
    # Not one of the retired vocabulary's stems, so never the seed sample's "Atlas Capital Partners" & co.
    seed_sample = {"atlas capital partners", "beacon wealth management", "crescent advisory group"}
    assert not seed_sample & set(keys)
    first_words = named["client_name"].str.removeprefix("The ").str.split().str[0]
    assert not set(first_words) & set(generator._RETIRED_STEMS)


def test_sibling_brands_are_the_hard_negatives(book: pd.DataFrame) -> None:
    originals = book[~book["is_duplicate"] & (book["client_name"].fillna("") != "")].copy()
    bare = originals["client_name"].str.removeprefix("The ").str.replace(r" (?:LLC|Inc\.|LP|Ltd)$", "", regex=True)
    originals["brand"] = bare.str.rsplit(" ", n=2).str[0]  # all but the kind and form words
    per_brand = originals.groupby("brand")["entity_id"].nunique()
    assert 0.4 < (per_brand >= 2).mean() < 0.8 and per_brand.max() <= 6
    shared = originals[originals["brand"].isin(per_brand[per_brand >= 2].index)]
    # Siblings differ in kind or form, never in the brand alone ...
    assert normalise(shared["client_name"]).is_unique
    # ... and share one parent, which hangs off the brand.
    parents = shared.dropna(subset=["parent_org"]).groupby("brand")["parent_org"].nunique()
    assert (parents == 1).all()
    with_parent = shared.dropna(subset=["parent_org"])
    assert all(parent.startswith(brand + " ") for parent, brand in zip(with_parent["parent_org"], with_parent["brand"]))
    # Accents on ~2% of brands, two brands joined by "&" or "and" on ~3% of names, "The" on a few.
    assert 0.01 < originals["brand"].str.contains("[À-ÿ]").mean() < 0.035
    assert 0.015 < originals["brand"].str.contains(" (?:&|and) ").mean() < 0.05
    assert 0.015 < originals["client_name"].str.startswith("The ").mean() < 0.05


def _plain(words: pd.Series) -> pd.Series:
    """Lower case without accents (stripped only where there are any: the bulk is plain ASCII already)."""
    out = words.copy()
    accented = out.str.contains("[^A-Za-z &]", regex=True)
    out[accented] = out[accented].str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii")
    return out.str.lower()


def test_names_are_unique_by_construction_at_two_million_organisations() -> None:
    key = generator._universe_key(SEED)
    # Every brand word of the space is distinct, also without its accent, and none is a retired stem.
    brands = _plain(pd.Series(generator._brands(key, np.arange(generator._BRAND_SPACE)), dtype=object))
    assert brands.is_unique and not brands.isin([s.lower() for s in generator._RETIRED_STEMS]).any()

    started = time.perf_counter()
    api = generator._organisations(key, generator._API_LANE, np.arange(2_000_000))
    drop = generator._organisations(key, generator._DROP_LANE, np.arange(200_000))
    print(f"\n2,000,000 + 200,000 organisations named in {time.perf_counter() - started:.2f}s")
    orgs = pd.DataFrame({part: np.concatenate([getattr(api, part), getattr(drop, part)]) for part in ("brand", "kind", "form")})
    # Names are [The] brand kind form [suffix]: distinct (brand, kind, form) and brands that stay
    # distinct once normalised ("&" or "and", accents, case) make distinct organisation names.
    assert not orgs.duplicated().any()
    distinct = pd.Series(orgs["brand"].unique(), dtype=object)
    assert _plain(distinct.str.replace(" & ", " and ", regex=False)).is_unique
    assert len(distinct) < 0.6 * len(orgs)  # brands are shared by siblings
    with pytest.raises(ValueError, match="beyond the name space"):
        generator._organisations(key, generator._API_LANE, np.array([generator._LANE_CAPACITY + 200_000]))


def test_duplicates_share_the_entity_but_are_spelled_differently(book: pd.DataFrame) -> None:
    original = book.set_index("client_id").loc[book["original_id"]].reset_index(drop=True)
    dup = book["is_duplicate"].to_numpy()
    named = dup & (book["client_name"].fillna("") != "").to_numpy() & (original["client_name"].fillna("") != "").to_numpy()
    mine = book.loc[named, "client_name"].reset_index(drop=True)
    theirs = original.loc[named, "client_name"].reset_index(drop=True)
    assert len(mine) > 500
    assert (mine != theirs).mean() > 0.97
    # Once every planted variation but the typo is undone, ~20% still differ: those have the typo, one edit away.
    typo = expand(mine) != expand(theirs)
    assert 0.14 < typo.mean() < 0.26
    kept_mine, kept_theirs = expand(mine, drop_company=False)[typo], expand(theirs, drop_company=False)[typo]
    distance = [
        min(edits(a, b), edits(c, d)) for a, b, c, d in zip(expand(mine)[typo], expand(theirs)[typo], kept_mine, kept_theirs)
    ]
    assert all(d >= 1 for d in distance) and np.mean(np.array(distance) == 1) > 0.95
    # Each variation turns up.
    assert (mine == mine.str.upper()).mean() > 0.05 and (mine == mine.str.lower()).mean() > 0.05
    assert mine.str.contains(r"\b(?:Ptnrs|Mgmt|Assoc|Advisers|Grp|Hldgs|Intl|Int'l|Finl|Fin'l)\b", case=False).any()
    assert mine.str.contains(r"\b(?:Inv|Invest|Strat|Cnsl)\.", case=False).any()
    assert mine.str.contains(r"L\.L\.C\.|Incorporated|Limited|Corporation", case=False).any()
    assert mine.str.contains("  ").any() and mine.str.contains(r", (?:LLC|Inc|Ltd|LP|L\.)", case=False).any()
    assert (mine.str.startswith("The ") != theirs.str.startswith("The ")).any()
    accented = theirs.str.contains("[À-ÿ]")
    assert (accented & ~mine.str.contains("[À-ÿ]", case=False)).any()
    amp = theirs.str.contains(" & ")
    assert (amp & mine.str.contains(" and ", case=False)).any()


def test_duplicates_other_fields_vary_at_the_stated_rates(book: pd.DataFrame) -> None:
    original = book.set_index("client_id").loc[book["original_id"]].reset_index(drop=True)
    dup = book["is_duplicate"].to_numpy()
    mine, theirs = book[dup].reset_index(drop=True), original[dup].reset_index(drop=True)
    canon = {s: c for c, spellings in REGION_SPELLINGS.items() for s in spellings}
    # Mostly the same region, perhaps spelled otherwise or left blank; ~2% filed under another region.
    known = mine["region"].map(canon).notna() & theirs["region"].map(canon).notna()
    moved = mine.loc[known, "region"].map(canon) != theirs.loc[known, "region"].map(canon)
    assert 0.005 < moved.mean() < 0.04
    assert 0.20 < (known & (mine["region"] != theirs["region"])).mean() < 0.40
    assert 0.02 < (mine["region"] == "").mean() < 0.09
    seg = {s: c for c, spellings in SEGMENT_SPELLINGS.items() for s in spellings}
    both = mine["segment"].map(seg).notna() & theirs["segment"].map(seg).notna()
    assert (mine.loc[both, "segment"].map(seg) == theirs.loc[both, "segment"].map(seg)).all()
    assert 0.12 < (mine["segment"] != theirs["segment"]).mean() < 0.28
    had_parent = theirs["parent_org"].notna()
    assert 0.22 < mine.loc[had_parent, "parent_org"].isna().mean() < 0.38
    kept = had_parent & mine["parent_org"].notna()
    assert (mine.loc[kept, "parent_org"] == theirs.loc[kept, "parent_org"]).all()
    # Mostly the same advisor, in another case now and then, or missing; ~5% handed to a colleague of the region.
    both = mine["advisor_email"].notna() & theirs["advisor_email"].notna()
    advisor = r"^([a-z]+\.[a-z]+)(?:@|\(at\))"
    who_mine = mine["advisor_email"].str.lower().str.extract(advisor)[0]
    who_theirs = theirs["advisor_email"].str.lower().str.extract(advisor)[0]
    known = who_mine.notna() & who_theirs.notna()
    assert known.mean() > 0.8 and 0.02 < (who_mine[known] != who_theirs[known]).mean() < 0.09
    assert 0.20 < (both & (mine["advisor_email"] != theirs["advisor_email"])).mean() < 0.40
    assert 0.06 < mine["advisor_email"].isna().mean() < 0.15
    assert (mine["updated_at"] != theirs["updated_at"]).all()
    assert 0.005 < (mine["status"] != theirs["status"]).mean() < 0.06  # 15% redrawn, of which 18% come out otherwise
    assert 0.3 < (mine["aum_usd"] != theirs["aum_usd"]).mean() < 0.6
    assert (mine["business_type"] != theirs["business_type"]).any()


def test_drop_overlaps_the_api_book_and_plants_its_own_repeats() -> None:
    api_n, n = 10_000, 5000
    api = generate_clients(api_n, SEED).assign(entity_id=client_entities(api_n, SEED))
    drop = generate_drop(n, SEED, api_clients=api_n, overlap=0.3)
    assert list(drop.columns) == [*DROP_COLUMNS, "entity_id"] and len(drop) == n
    assert (drop.dtypes == object).all()
    assert drop["client_id"].tolist() == [f"D{i:06d}" for i in range(1, n + 1)]
    assert drop["client_id"].str.fullmatch(CLIENT_ID_PATTERN.strip("^$")).all()
    assert not set(drop["client_id"]) & set(api["client_id"])

    from_api = drop["entity_id"].isin(set(api["entity_id"]))
    assert 0.26 < from_api.mean() < 0.34
    repeated = drop["entity_id"].duplicated()
    assert 0.5 * DROP_DUPLICATE_RATE < repeated.mean() < 1.5 * DROP_DUPLICATE_RATE
    # Each API organisation enters the drop once (plus the drop's own repeats).
    assert not drop.loc[from_api & ~repeated, "entity_id"].duplicated().any()
    # New organisations: ids and names no API book of this seed uses.
    new = drop.loc[~from_api, "entity_id"]
    assert (new.str[1:].astype(int) >= 10_000_000).all()
    api_names = set(normalise(api["client_name"].dropna()))
    new_names = normalise(drop.loc[~from_api & ~repeated, "client_name"].dropna())
    assert not (set(new_names) - {""}) & api_names
    assert new_names[new_names != ""].is_unique
    # Cross-source duplicates are varied copies: same organisation, other spelling.
    first = api.drop_duplicates("entity_id").set_index("entity_id")
    crossing = drop[from_api & (drop["client_name"].fillna("") != "")]
    canonical = first.loc[crossing["entity_id"], "client_name"].to_numpy()
    assert (crossing["client_name"].to_numpy() != canonical).mean() > 0.95
    assert (expand(crossing["client_name"]).to_numpy() == expand(pd.Series(canonical, dtype=object)).to_numpy()).mean() > 0.7

    alone = generate_drop(n, SEED)
    assert (alone["entity_id"].str[1:].astype(int) >= 10_000_000).all()
    assert 0.5 * DROP_DUPLICATE_RATE < alone["entity_id"].duplicated().mean() < 1.5 * DROP_DUPLICATE_RATE
    assert not set(normalise(alone["client_name"].dropna())) - {""} & api_names
    # Messy like the API book: nameless records, unknown regions, parents missing.
    assert 0.002 < (alone["client_name"].fillna("") == "").mean() < 0.012
    assert 0.002 < alone["region"].isin(UNKNOWN_REGIONS).mean() < 0.015
    assert 0.2 < alone["parent_org"].isna().mean() < 0.32
    with pytest.raises(ValueError, match="overlap"):
        generate_drop(10, SEED, api_clients=10, overlap=1.5)


def test_write_drop_csv_can_write_a_related_drop_without_the_truth(tmp_path) -> None:
    path = tmp_path / "clients.csv"
    assert write_drop_csv(path, 400, seed=3, api_clients=1000, overlap=0.5) == 400
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == list(DROP_COLUMNS)
    expected = generate_drop(400, 3, api_clients=1000, overlap=0.5)[list(DROP_COLUMNS)].fillna("")
    pd.testing.assert_frame_equal(back, expected.astype(str), check_dtype=False)


def test_labelled_book_truth_covers_every_record_once() -> None:
    lb = labelled_book(10_000, SEED)
    assert isinstance(lb, LabelledBook)
    assert list(lb.api.columns) == list(CLIENT_COLUMNS) and list(lb.drop.columns) == list(DROP_COLUMNS)
    assert (len(lb.api), len(lb.drop)) == (7000, 3000)
    assert list(lb.truth.columns) == ["source_system", "client_id", "entity_id"]
    records = pd.concat(
        [lb.api[["client_id"]].assign(source_system="crm_api"), lb.drop[["client_id"]].assign(source_system="csv_drop")]
    )
    truth_keys = lb.truth[["source_system", "client_id"]]
    assert not truth_keys.duplicated().any() and len(truth_keys) == len(records) == 10_000
    assert set(map(tuple, truth_keys.to_numpy())) == set(zip(records["source_system"], records["client_id"]))
    assert lb.truth["entity_id"].notna().all()
    api_truth = lb.truth[lb.truth["source_system"] == "crm_api"]
    assert api_truth["entity_id"].tolist() == client_entities(7000, SEED).tolist()
    # True matching pairs: within the API book, within the drop and across the two.
    sources = lb.truth.groupby("entity_id")["source_system"].agg(lambda s: frozenset(s))
    sizes = lb.truth.groupby("entity_id").size()
    multi = sources[sizes > 1]
    assert (multi == frozenset({"crm_api", "csv_drop"})).sum() > 700
    assert (multi == frozenset({"crm_api"})).sum() > 100 and (multi == frozenset({"csv_drop"})).sum() > 10


def test_generation_time_for_a_100k_book() -> None:
    timings = {}
    started = time.perf_counter()
    clients = generate_clients(100_000, SEED)
    timings["generate_clients(100_000)"] = time.perf_counter() - started
    started = time.perf_counter()
    entities = client_entities(100_000, SEED)
    timings["client_entities(100_000)"] = time.perf_counter() - started
    started = time.perf_counter()
    drop = generate_drop(50_000, SEED, api_clients=100_000)
    timings["generate_drop(50_000, api_clients=100_000)"] = time.perf_counter() - started
    started = time.perf_counter()
    lb = labelled_book(100_000, SEED)
    timings["labelled_book(100_000)"] = time.perf_counter() - started
    print("\n" + "\n".join(f"{what:45s} {seconds:6.2f}s" for what, seconds in timings.items()))
    assert len(clients) == len(entities) == 100_000 and len(drop) == 50_000 and len(lb.truth) == 100_000
