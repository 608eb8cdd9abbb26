"""End to end: a small hand-made book through ingest, client_records and ``resolve``.

The book has a cross-source duplicate (the CRM's "Atlas Capital Partners, LLC" and a drop's "ATLAS
CAPITAL PTNRS."), a typo duplicate ("Redwood Equity Holdngs Inc."), two sibling pairs that must stay
apart (Veltaro Capital / Veltaro Wealth, Redwood / Ironwood), an unmatchable Chinese name and a
singleton. Expectations follow the documented rules: duplicates merge, siblings do not, an
unmatchable name stays alone unless a must-link names it, keys are the earliest record's record key
and do not move when nothing changed.
"""

import pandas as pd
import pytest

from crm_territory.logic.ingest.api_snapshot import records_to_frame
from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.matching.client_dim import client_dim_from_records, client_records
from crm_territory.logic.matching.decisions import MatchDecisions, MatchDecisionsError, parse_decisions
from crm_territory.logic.matching.names import NOT_LATIN
from crm_territory.logic.matching.resolve import HUMAN, MATCHED, ONLY_RECORD, resolve
from crm_territory.schemas import ClientMatches, ClientXref
from crm_territory_tests.support import utc

NOW = utc("2026-11-26T10:00:00")
NEXT_RUN = utc("2026-11-27T10:00:00")
HEADER = "client_id,client_name,region,segment,parent_org,advisor_email"


def api(client_id, name, region, updated_at, parent=None, email=None):
    return {
        "client_id": client_id, "client_name": name, "region": region, "segment": "Institutional",
        "parent_org": parent, "advisor_email": email, "status": "active", "updated_at": updated_at,
    }  # fmt: skip


CRM = [
    api("100001", "Atlas Capital Partners, LLC", "Northeast", "2026-01-05T00:00:00Z", "Atlas Holdings", "a.smith@northwind.com"),
    api("100002", "Veltaro Capital Partners", "West", "2026-02-01T00:00:00Z"),
    api("100003", "Redwood Equity Holdings", "Midwest", "2026-02-01T00:00:00Z"),
    api("100004", "北京资本管理有限公司", "Northeast", "2026-03-01T00:00:00Z"),
]
DROP = f"""{HEADER}
D1,ATLAS CAPITAL PTNRS.,NE,INST,Atlas Holdings,A.Smith@northwind.com
D2,Veltaro Wealth Partners,W,RET,,
D3,Ironwood Equity Holdings,MW,INST,,
D4,Redwood Equity Holdngs Inc.,Mid West,INST,,
D5,Beijing Capital Management,NE,INST,,
D6,Crescent Advisory Group,Southeast,Retail,,
"""


def book(reference, crm, *drops):
    """client_records from CRM API records and CSV drops given as (file name, text, modification time)."""
    landed = []
    for name, text, mtime in drops:
        data = text.encode()
        landed.append((LandingFile(name, len(data), utc(mtime)), read_drop(name, data)))
    ingested = assemble_raw_clients(landed, records_to_frame([(1, crm)], NOW) if crm else None, NOW)
    assert ingested.quarantined.empty
    return client_records(ingested.raw_clients, reference)


@pytest.fixture(scope="module")
def records(reference):
    """client_records of the book: 4 CRM records and 6 drop records."""
    return book(reference, CRM, ("clients_2026-11.csv", DROP, "2026-11-01"))


@pytest.fixture(scope="module")
def first(records):
    return resolve(records, MatchDecisions.none(), None, None, NOW)


def decisions(*rows) -> MatchDecisions:
    return parse_decisions(pd.DataFrame(rows, columns=["record_a", "record_b", "decision", "note"]), "test")


def key_of(resolution) -> dict[str, str]:
    xref = resolution.xref
    return dict(zip(xref["source_system"] + ":" + xref["source_record_id"], xref["client_key"]))


def clusters(resolution) -> set[frozenset[str]]:
    keys = key_of(resolution)
    return {frozenset(r for r, k in keys.items() if k == key) for key in set(keys.values())}


def test_the_book_is_ten_records(records):
    assert len(records) == 10
    assert records["record_key"].str.startswith("crm_api:").sum() == 4


def test_xref_covers_every_record_exactly_once(records, first):
    ClientXref.validate(first.xref)
    ClientMatches.validate(first.matches)
    assert sorted(key_of(first)) == sorted(records["record_key"])
    assert len(first.xref) == len(records)


def test_cross_source_and_typo_duplicates_merge_siblings_do_not(first):
    assert clusters(first) == {
        frozenset({"crm_api:100001", "csv_drop:D1"}),  # the CRM's name and the drop's shouting abbreviation
        frozenset({"crm_api:100003", "csv_drop:D4"}),  # a typo and a legal form
        frozenset({"crm_api:100002"}),  # Veltaro Capital Partners ...
        frozenset({"csv_drop:D2"}),  # ... and Veltaro Wealth Partners are siblings
        frozenset({"csv_drop:D3"}),  # Ironwood is not Redwood
        frozenset({"crm_api:100004"}),
        frozenset({"csv_drop:D5"}),
        frozenset({"csv_drop:D6"}),
    }


def test_a_cluster_key_is_its_earliest_records_key_and_a_lone_record_keeps_its_own(first):
    keys = key_of(first)
    # the CRM records were updated in January/February, the drop landed in November
    assert keys["crm_api:100001"] == keys["csv_drop:D1"] == "crm_api:100001"
    assert keys["crm_api:100003"] == keys["csv_drop:D4"] == "crm_api:100003"
    for alone in ["crm_api:100002", "crm_api:100004", "csv_drop:D2", "csv_drop:D3", "csv_drop:D5", "csv_drop:D6"]:
        assert keys[alone] == alone
    assert (first.xref["client_key_issued_at"] == NOW).all() and (first.xref["first_seen_at"] == NOW).all()
    assert first.retirements.empty


def test_xref_says_how_each_record_got_its_key(first):
    xref = first.xref.assign(record=first.xref["source_system"] + ":" + first.xref["source_record_id"]).set_index("record")
    assert xref.loc["csv_drop:D1", "linked_by"] == MATCHED and xref.loc["csv_drop:D1", "records_in_client"] == 2
    assert xref.loc["csv_drop:D6", "linked_by"] == ONLY_RECORD and xref.loc["csv_drop:D6", "records_in_client"] == 1
    assert xref.loc["crm_api:100004", "unmatchable_reason"] == NOT_LATIN
    assert xref["unmatchable_reason"].notna().sum() == 1


def test_matches_list_the_merged_pairs(first):
    merged = first.matches[first.matches["merged"]]
    assert set(zip(merged["record_a"], merged["record_b"])) == {
        ("crm_api:100001", "csv_drop:D1"),
        ("crm_api:100003", "csv_drop:D4"),
    }
    assert (merged["decision"] == "match").all() and (merged["decided_by"] == "matcher").all()
    assert (first.matches["record_a"] < first.matches["record_b"]).all()


def test_client_dim_has_one_golden_row_per_client(records, first):
    dim = client_dim_from_records(records, first.xref).set_index("client_key")
    assert len(dim) == 8
    atlas = dim.loc["crm_api:100001"]
    assert atlas["source_record_count"] == 2
    assert atlas["client_name"] == "Atlas Capital Partners, LLC"  # the CRM is trusted for names
    assert atlas["region"] == "Northeast"
    assert dim.loc["csv_drop:D6", "source_record_count"] == 1


def test_an_unmatchable_name_is_linked_only_by_a_must_link(records):
    linked = resolve(
        records, decisions(("csv_drop:D5", "crm_api:100004", "must_link", "same firm, two scripts")), None, None, NOW
    )
    keys = key_of(linked)
    assert keys["crm_api:100004"] == keys["csv_drop:D5"] == "crm_api:100004"  # March beats November
    xref = linked.xref.set_index(linked.xref["source_system"] + ":" + linked.xref["source_record_id"])
    assert xref.loc["csv_drop:D5", "linked_by"] == HUMAN
    assert xref.loc["crm_api:100004", "unmatchable_reason"] == NOT_LATIN  # still says why the matcher could not
    human = linked.matches[linked.matches["decided_by"] == "human"]
    assert human[["record_a", "record_b", "decision"]].values.tolist() == [["crm_api:100004", "csv_drop:D5", "must_link"]]
    assert human["merged"].tolist() == [True]


def test_a_cannot_link_keeps_a_matched_pair_apart(records):
    apart = resolve(records, decisions(("crm_api:100001", "csv_drop:D1", "cannot_link", "")), None, None, NOW)
    keys = key_of(apart)
    assert keys["crm_api:100001"] == "crm_api:100001" and keys["csv_drop:D1"] == "csv_drop:D1"
    row = apart.matches.set_index(["record_a", "record_b"]).loc[("crm_api:100001", "csv_drop:D1")]
    assert (row["decision"], row["decided_by"], row["merged"]) == ("cannot_link", "human", False)


def test_a_decision_about_a_record_not_in_the_book_is_kept_and_reported_not_applied(records, first):
    out = resolve(records, decisions(("crm_api:100001", "csv_drop:D999", "must_link", "arrives next week")), None, None, NOW)
    assert clusters(out) == clusters(first)
    assert out.stats["human_decisions_not_applied"] == 1
    assert out.decisions_not_applied["record_b"].tolist() == ["csv_drop:D999"]


def test_rerunning_with_the_previous_xref_changes_nothing(records, first):
    second = resolve(records, MatchDecisions.none(), first.xref, first.retirements, NEXT_RUN)
    pd.testing.assert_frame_equal(second.xref, first.xref)  # keys, issue times and first-seen times
    assert second.retirements.empty
    pd.testing.assert_frame_equal(second.matches, first.matches)


def test_a_must_link_on_a_later_run_keeps_one_key_and_retires_the_other(records, first):
    later = resolve(
        records, decisions(("crm_api:100004", "csv_drop:D5", "must_link", "")), first.xref, first.retirements, NEXT_RUN
    )
    keys = key_of(later)
    # both keys were issued on the first run: the one whose record is older survives (the CRM's, March,
    # against the drop of November)
    assert keys["csv_drop:D5"] == keys["crm_api:100004"] == "crm_api:100004"
    assert later.retirements[["retired_client_key", "client_key"]].values.tolist() == [["csv_drop:D5", "crm_api:100004"]]
    # every other client keeps its key
    assert {r: k for r, k in keys.items() if r not in {"crm_api:100004", "csv_drop:D5"}} == {
        r: k for r, k in key_of(first).items() if r not in {"crm_api:100004", "csv_drop:D5"}
    }


def test_a_cannot_link_on_a_later_run_splits_without_reusing_a_key(records, first):
    later = resolve(
        records, decisions(("crm_api:100001", "csv_drop:D1", "cannot_link", "")), first.xref, first.retirements, NEXT_RUN
    )
    keys = key_of(later)
    # one record each: the part holding the older record (the CRM's, January) keeps the key
    assert keys["crm_api:100001"] == "crm_api:100001" and keys["csv_drop:D1"] == "csv_drop:D1"
    new_key = keys["csv_drop:D1"]
    assert new_key not in set(first.xref["client_key"])
    issued = dict(zip(later.xref["client_key"], later.xref["client_key_issued_at"]))
    assert issued[new_key] == NEXT_RUN and issued["crm_api:100001"] == NOW


def test_a_duplicate_arriving_later_joins_its_client_under_the_same_key(reference, first):
    later_drop = f"{HEADER}\nD7,Atlas Capital Partners Inc,Northeast,INST,Atlas Holdings,\n"
    grown = book(reference, CRM, ("clients_2026-11.csv", DROP, "2026-11-01"), ("update_2026-11-26.csv", later_drop, "2026-11-26"))
    later = resolve(grown, MatchDecisions.none(), first.xref, first.retirements, NEXT_RUN)
    keys = key_of(later)
    assert keys["csv_drop:D7"] == keys["crm_api:100001"] == keys["csv_drop:D1"] == "crm_api:100001"
    assert later.retirements.empty
    xref = later.xref.set_index(later.xref["source_system"] + ":" + later.xref["source_record_id"])
    assert xref.loc["csv_drop:D7", "first_seen_at"] == NEXT_RUN and xref.loc["csv_drop:D1", "first_seen_at"] == NOW
    assert xref.loc["csv_drop:D7", "client_key_issued_at"] == NOW  # the key is the one issued on the first run
    assert {r: k for r, k in keys.items() if r != "csv_drop:D7"} == key_of(first)


def test_one_word_written_as_two_still_merges(reference):
    """The scorer calls "Bluewater" / "Blue Water" a match (different word count, name score >= 95);
    the pipeline must let the two records meet."""
    crm = [api("200001", "Bluewater Capital", "West", "2026-01-05T00:00:00Z")]
    drop = f"{HEADER}\nB1,Blue Water Capital,West,INST,,\n"
    out = resolve(book(reference, crm, ("b.csv", drop, "2026-11-01")), MatchDecisions.none(), None, None, NOW)
    assert key_of(out) == {"crm_api:200001": "crm_api:200001", "csv_drop:B1": "crm_api:200001"}


def test_a_must_link_to_an_unmatchable_record_does_not_split_its_clients_duplicates(reference):
    """The human vouches for the must-linked pair as a whole: the drop's duplicate of the CRM record stays."""
    crm = [api("300001", "Atlas Capital Partners", "Northeast", "2026-01-05T00:00:00Z")]
    drop = f'{HEADER}\nX1,"ATLAS CAPITAL PARTNERS, LLC",NE,INST,,\nX2,北京资本,NE,INST,,\n'
    records = book(reference, crm, ("x.csv", drop, "2026-11-01"))
    out = resolve(records, decisions(("crm_api:300001", "csv_drop:X2", "must_link", "")), None, None, NOW)
    assert set(key_of(out).values()) == {"crm_api:300001"}
    assert out.stats["clusters_split_by_chain_guard"] == 0


def test_a_typo_duplicate_does_not_bridge_two_sibling_organisations(reference):
    """Brompela ~ Broampela (a typo) and Broampela ~ Groampela (a typo) but Brompela / Groampela are
    two organisations (two letters apart): the chain guard keeps them in separate clients."""
    crm = [
        api("400001", "Brompela Wealth Group", "West", "2026-01-05T00:00:00Z"),
        api("400002", "Groampela Wealth Group", "West", "2026-01-06T00:00:00Z"),
    ]
    drop = f"{HEADER}\nY1,Broampela Wealth Group,West,INST,,\n"
    out = resolve(book(reference, crm, ("y.csv", drop, "2026-11-01")), MatchDecisions.none(), None, None, NOW)
    keys = key_of(out)
    assert keys["crm_api:400001"] != keys["crm_api:400002"]
    assert out.stats["clusters_split_by_chain_guard"] == 1


def test_contradictory_decisions_name_the_lines_and_records(records):
    contradictory = decisions(
        ("crm_api:100001", "csv_drop:D1", "must_link", ""),
        ("csv_drop:D1", "csv_drop:D6", "must_link", ""),
        ("crm_api:100001", "csv_drop:D6", "cannot_link", ""),
    )
    with pytest.raises(MatchDecisionsError) as error:
        resolve(records, contradictory, None, None, NOW)
    message = str(error.value)
    assert "line 4: cannot_link crm_api:100001 and csv_drop:D6" in message and "must_link lines 2, 3" in message


def test_a_newcomer_does_not_pull_a_member_away_from_its_client(reference):
    """{a, b} were one client; c is more like b than b is like a, and unlike a (other region and parent):
    the guard rebuilds the cluster keeping a and b together, and c goes alone."""
    crm = [
        api("500001", "Veltaro Capital Partners", "West", "2026-01-05T00:00:00Z", "Veltaro Holdings"),
        api("500002", "Veltaro Capital Partners LLC", "West", "2026-01-06T00:00:00Z", None, "jo@x.com"),
    ]
    before = resolve(book(reference, crm), MatchDecisions.none(), None, None, NOW)
    assert set(key_of(before).values()) == {"crm_api:500001"}
    newcomer = api("500003", "Veltaro Capital Partners", "Northeast", "2026-02-01T00:00:00Z", "Brisken Group", "jo@x.com")
    after = resolve(book(reference, [*crm, newcomer]), MatchDecisions.none(), before.xref, before.retirements, NEXT_RUN)
    keys = key_of(after)
    assert keys["crm_api:500001"] == keys["crm_api:500002"] == "crm_api:500001"
    assert keys["crm_api:500003"] == "crm_api:500003"


def test_a_split_off_part_keeps_the_key_rather_than_retire_it(reference):
    """Run 1: {100002, D2} under key crm_api:100002 (100001 alone). Run 2 must-links 100002 to the older
    100001 and cannot-links it from D2: 100002 joins 100001's client, and D2, still alone, keeps
    crm_api:100002 instead of the key being retired and D2 given a new one."""
    crm = [
        api("100001", "Northwind Trust", "West", "2026-01-01T00:00:00Z"),
        api("100002", "Veltaro Capital Partners", "West", "2026-02-01T00:00:00Z"),
    ]
    drop = f"{HEADER}\nD2,VELTARO CAPITAL PARTNERS,West,INST,,\n"
    records = book(reference, crm, ("d.csv", drop, "2026-11-01"))
    first_run = resolve(records, MatchDecisions.none(), None, None, NOW)
    assert key_of(first_run)["csv_drop:D2"] == "crm_api:100002"
    moved = decisions(("crm_api:100001", "crm_api:100002", "must_link", ""), ("crm_api:100002", "csv_drop:D2", "cannot_link", ""))
    second = resolve(records, moved, first_run.xref, first_run.retirements, NEXT_RUN)
    keys = key_of(second)
    assert keys["crm_api:100002"] == keys["crm_api:100001"] == "crm_api:100001"
    assert keys["csv_drop:D2"] == "crm_api:100002" and second.retirements.empty


def test_a_chain_of_must_links_over_the_limit_stops_naming_its_lines_unless_accepted(records):
    """The probe's 999-line must_link chain merged 927 clients into one, SUCCESS with every check passed."""
    keys = sorted(records["record_key"])
    chain = decisions(*[(a, b, "must_link", "pasted column") for a, b in zip(keys, keys[1:])])  # 9 lines, 10 records
    with pytest.raises(
        MatchDecisionsError, match=r"9 must_link lines \(lines 2-10\) join 10 records into one client .*at most 4 records"
    ):
        resolve(records, chain, None, None, NOW, max_must_link_group=4)
    # within the limit, or accepted (no limit), the decisions are honoured as ever
    assert len(clusters(resolve(records, chain, None, None, NOW, max_must_link_group=10))) == 1
    assert len(clusters(resolve(records, chain, None, None, NOW, max_must_link_group=None))) == 1


def test_many_small_must_link_groups_that_fold_a_large_share_of_the_book_stop_unless_accepted(reference):
    """Each group is within the group limit, but together they merge half of the book: a join gone wrong."""
    names = [
        f"{word} {kind}" for word in ("Atlas", "Beacon", "Crescent", "Delta", "Ember", "Fjord") for kind in "ABCDEFGHIJKLMNOPQRST"
    ]
    crm = [api(str(200000 + i), f"{name} Holdings", "West", "2026-01-01T00:00:00Z") for i, name in enumerate(names)]
    records = book(reference, crm)  # 120 records
    keys = sorted(records["record_key"])
    pairs = [(a, b, "must_link", "joined on the wrong column") for a, b in zip(keys[0::2], keys[1::2])]
    with pytest.raises(MatchDecisionsError) as refused:
        resolve(records, decisions(*pairs), None, None, NOW)  # 60 groups of 2, each far within the group limit
    message = str(refused.value)
    assert "must_link decisions would merge 60 of the 120 records (50% of the book) into other records, in 60 groups" in message
    assert "at most 5% of the book (at least 50 records: 50 here)" in message
    assert "accept_large_must_link_groups: true" in message
    # accepted (no limit): honoured; a handful of decisions: honoured under the default limits
    assert len(clusters(resolve(records, decisions(*pairs), None, None, NOW, max_must_link_share=None))) <= 60
    assert len(clusters(resolve(records, decisions(*pairs[:10]), None, None, NOW))) <= 110


def test_a_decisions_file_over_the_size_limit_is_refused_naming_its_size_and_the_limit(tmp_path):
    from crm_territory.logic.matching.decisions import MAX_DECISIONS_BYTES, read_decisions

    path = tmp_path / "decisions.csv"
    path.write_text("record_a,record_b,decision,note\n" + "#" * MAX_DECISIONS_BYTES + "\n")
    with pytest.raises(MatchDecisionsError) as refused:
        read_decisions(path)
    assert str(refused.value).startswith(
        f"{path}: the match decisions file is {path.stat().st_size:,} bytes; "
        f"a match decisions file may have at most {MAX_DECISIONS_BYTES:,} bytes: each line is a pair of records someone reviewed"
    )


def test_the_probes_100000_decision_lines_are_within_the_size_limit(tmp_path):
    from crm_territory.logic.matching.decisions import read_decisions

    path = tmp_path / "decisions.csv"
    lines = [f"crm_api:{200000 + i},csv_drop:D{i:07d},must_link,checked by hand" for i in range(100_000)]
    path.write_text("record_a,record_b,decision,note\n" + "\n".join(lines) + "\n")
    assert len(read_decisions(path).pairs) == 100_000
