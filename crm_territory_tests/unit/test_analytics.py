"""The analytics app's figures (crm_territory/logic/analytics) on a small hand-made book: every expected value below
is counted by hand from the frames, not by the code under test."""

import math

import numpy as np
import pandas as pd
import pytest

from crm_territory.logic.analytics import advisors, families, history, overview, preview, quality, territories
from crm_territory.schemas import (
    AdvisorDim,
    AssignmentsFact,
    AssignmentsFactHistory,
    ClientDim,
    ClientDimHistory,
    ClientMatches,
    IngestManifest,
    QuarantinedClients,
    TerritoryDim,
    TerritoryRules,
    conform,
    model_dtypes,
)
from crm_territory_tests.support import utc

T1, T2 = utc("2026-03-01 06:00"), utc("2026-04-01 06:00")
V = "3383e99a5576"


# required columns the figures do not use, so that every hand-made table is a valid one (validated below)
FILLERS = {
    "source_system": "crm_api",
    "source_record_id": "1",
    "source_modified_at": T1,
    "source_record_count": 1,
    "change_hash": "0123456789abcdef",
    "rules_version": V,
}


def frame(model, rows: list[dict]) -> pd.DataFrame:
    """Rows naming some columns, the others missing (or a filler where the model requires one), validated by the model."""
    columns = list(model_dtypes(model))
    records = [{c: row.get(c, FILLERS.get(c)) for c in columns} for row in rows]
    return model.validate(conform(pd.DataFrame(records, columns=columns), model))


CLIENTS = frame(
    ClientDim,
    [
        dict(client_key="k:1", client_name="Atlas Capital", region="Northeast", segment="Retail", parent_org="P1",
             primary_advisor_email="a@x.com", is_active=True, aum_usd=100.0),
        dict(client_key="k:2", client_name="Beacon Wealth", region="Northeast", segment="Retail", parent_org="P1",
             primary_advisor_email="b@x.com", is_active=True, aum_usd=50.0),
        dict(client_key="k:3", client_name="Crescent", region="Midwest", segment="Institutional", parent_org="P1",
             is_active=False, aum_usd=30.0),
        dict(client_key="k:4", client_name="Delta", segment="Retail", is_active=True,
             data_issues="unknown region 'Pacific Rim'"),
        dict(client_key="k:5", client_name="Echo", region="West", segment="Retail", parent_org="P2",
             primary_advisor_email="a@x.com", is_active=True, aum_usd=20.0,
             data_issues="unknown segment 'Other, Misc'; invalid advisor e-mail"),
    ],
)  # fmt: skip
FACT = frame(
    AssignmentsFact,
    [
        dict(client_key="k:1", territory_id="NOR_RET", primary_advisor_email="a@x.com", assignment_type="PRIMARY",
             is_current=True, assigned_by="by-region-and-segment", advisor_reason="kept", rules_version=V),
        dict(client_key="k:2", territory_id="NOR_RET", primary_advisor_email="b@x.com", assignment_type="PRIMARY",
             is_current=True, assigned_by="by-region-and-segment", advisor_reason="reassigned_over_capacity", rules_version=V),
        dict(client_key="k:3", territory_id="MID_INS", assignment_type="PRIMARY", is_current=False,
             assigned_by="by-region-and-segment", advisor_reason="inactive_client", rules_version=V),
        dict(client_key="k:4", territory_id="UNASSIGNED", assignment_type="PRIMARY", is_current=True,
             assigned_by="fallback", advisor_reason="unassigned_territory", rules_version=V),
        dict(client_key="k:5", territory_id="WES_RET", primary_advisor_email="a@x.com", assignment_type="PRIMARY",
             is_current=True, assigned_by="by-region-and-segment", advisor_reason="assigned_new", rules_version=V),
        dict(client_key="k:2", territory_id="MID_INS", assignment_type="SECONDARY", is_current=True,
             assigned_by="parent_org", rules_version=V),
    ],
)  # fmt: skip
TERRITORIES = frame(
    TerritoryDim,
    [
        dict(territory_id="NOR_RET", region="Northeast", segment="Retail", owner_role="Retail Wealth Advisor", issued_at=T1),
        dict(territory_id="MID_INS", region="Midwest", segment="Institutional", owner_role="Institutional RM", issued_at=T1),
        dict(territory_id="WES_RET", region="West", segment="Retail", owner_role="Retail Wealth Advisor", issued_at=T1),
        dict(territory_id="SOU_RET", region="Southeast", segment="Retail", owner_role="Retail Wealth Advisor", issued_at=T1),
        dict(territory_id="UNASSIGNED", owner_role="triage", issued_at=T1),
    ],
)
ADVISORS = frame(
    AdvisorDim,
    [
        dict(advisor_email="a@x.com", advisor_name="Ann", territories="NOR_RET;WES_RET", capacity=1, active=True),
        dict(advisor_email="b@x.com", advisor_name="Bob", territories="NOR_RET", capacity=5, active=True),
        dict(advisor_email="c@x.com", advisor_name="Cat", territories="MID_INS", capacity=3, active=False),
    ],
)


# --- overview ---------------------------------------------------------------------------------------------------


def test_headline_counts_clients_active_aum_territories_and_active_advisors():
    assert overview.headline(CLIENTS, TERRITORIES, ADVISORS) == {
        "Clients": 5,
        "Active clients": 4,
        "AUM (USD)": 200.0,  # 100 + 50 + 30 + 20; Delta has none
        "Territories": 4,  # UNASSIGNED not counted
        "Active advisors": 2,
    }


def test_region_segment_grid_counts_each_cell_and_names_unknown_values():
    grid = overview.region_segment_grid(CLIENTS).set_index(["Region", "Segment"])
    assert grid.loc[("Northeast", "Retail")].tolist() == [2, 2, 150.0]
    assert grid.loc[("Midwest", "Institutional")].tolist() == [1, 0, 30.0]
    assert grid.loc[("(unknown)", "Retail")].tolist() == [1, 1, 0.0]
    assert grid["Clients"].sum() == 5


ASSIGNMENT_HISTORY = frame(
    AssignmentsFactHistory,
    [
        # k:1 unchanged since T1
        dict(client_key="k:1", territory_id="NOR_RET", primary_advisor_email="a@x.com", assignment_type="PRIMARY",
             assignment_is_current=True, assigned_by="r", advisor_reason="kept", valid_from=T1, is_current=True),
        # k:2 changed advisor at T2
        dict(client_key="k:2", territory_id="NOR_RET", primary_advisor_email="a@x.com", assignment_type="PRIMARY",
             assignment_is_current=True, assigned_by="r", advisor_reason="kept", valid_from=T1, valid_to=T2, is_current=False),
        dict(client_key="k:2", territory_id="NOR_RET", primary_advisor_email="b@x.com", assignment_type="PRIMARY",
             assignment_is_current=True, assigned_by="r", advisor_reason="reassigned_over_capacity", valid_from=T2, is_current=True),
        dict(client_key="k:2", territory_id="MID_INS", assignment_type="SECONDARY", assignment_is_current=True,
             assigned_by="parent_org", valid_from=T1, is_current=True),
        # k:3 moved territory at T2, no advisor either side
        dict(client_key="k:3", territory_id="MID_RET", assignment_type="PRIMARY", assignment_is_current=True,
             assigned_by="r", advisor_reason="no_advisor_for_territory", valid_from=T1, valid_to=T2, is_current=False),
        dict(client_key="k:3", territory_id="MID_INS", assignment_type="PRIMARY", assignment_is_current=False,
             assigned_by="r", advisor_reason="inactive_client", valid_from=T2, is_current=True),
        # k:4 new at T2, k:6 gone at T2
        dict(client_key="k:4", territory_id="UNASSIGNED", assignment_type="PRIMARY", assignment_is_current=True,
             assigned_by="fallback", advisor_reason="unassigned_territory", valid_from=T2, is_current=True),
        dict(client_key="k:6", territory_id="WES_RET", primary_advisor_email="a@x.com", assignment_type="PRIMARY",
             assignment_is_current=True, assigned_by="r", advisor_reason="kept", valid_from=T1, valid_to=T2, is_current=False),
    ],
)  # fmt: skip
CLIENT_HISTORY = frame(
    ClientDimHistory,
    [
        dict(client_key="k:1", client_name="Atlas", is_active=True, valid_from=T1, is_current=True),
        dict(client_key="k:2", client_name="Beacon", is_active=True, valid_from=T1, valid_to=T2, is_current=False),
        dict(client_key="k:2", client_name="Beacon Wealth", is_active=True, valid_from=T2, is_current=True),
        dict(client_key="k:4", client_name="Delta", is_active=True, valid_from=T2, is_current=True),
        dict(client_key="k:6", client_name="Gone", is_active=True, valid_from=T1, valid_to=T2, is_current=False),
    ],
)


def test_the_last_change_is_the_newest_valid_from_or_valid_to():
    assert overview.last_change_at(CLIENT_HISTORY, ASSIGNMENT_HISTORY) == T2
    assert overview.last_change_at(CLIENT_HISTORY.iloc[:0], ASSIGNMENT_HISTORY.iloc[:0]) is None


def test_primary_changes_of_the_last_run_name_each_kind_and_the_new_reason():
    changes = overview.primary_changes(ASSIGNMENT_HISTORY, T2).set_index("client_key")
    assert sorted(changes.index) == ["k:2", "k:3", "k:4", "k:6"]  # k:1 did not change; SECONDARY rows are not placements
    assert changes.loc["k:2", "Change"] == "new advisor"
    assert (changes.loc["k:2", "Advisor before"], changes.loc["k:2", "Advisor now"]) == ("a@x.com", "b@x.com")
    assert changes.loc["k:2", "Advisor reason"] == "reassigned_over_capacity"
    assert changes.loc["k:3", "Change"] == "moved territory"
    assert (changes.loc["k:3", "Territory before"], changes.loc["k:3", "Territory now"]) == ("MID_RET", "MID_INS")
    assert changes.loc["k:4", "Change"] == "new client"
    assert changes.loc["k:6", "Change"] == "left the book"
    assert overview.change_summary(changes.reset_index()).set_index("Change")["Clients"].to_dict() == {
        "new advisor": 1, "moved territory": 1, "new client": 1, "left the book": 1,
    }  # fmt: skip
    # before T2 nothing had changed since T1: at T1 every row is new
    assert set(overview.primary_changes(ASSIGNMENT_HISTORY, T1)["Change"]) == {"new client"}


def test_client_changes_count_new_changed_and_gone_clients():
    assert overview.client_changes(CLIENT_HISTORY, T2) == {"New clients": 1, "Clients changed": 1, "Clients gone": 1}


# --- territories ------------------------------------------------------------------------------------------------


def test_territory_summary_per_territory():
    summary = territories.territory_summary(FACT, CLIENTS, TERRITORIES, ADVISORS).set_index("Territory")
    nor = summary.loc["NOR_RET"]
    assert (nor["Clients"], nor["Active clients"], nor["AUM (USD)"], nor["Secondary clients"]) == (2, 2, 150.0, 0)
    assert (nor["Advisors"], nor["Capacity"]) == (2, 6) and nor["Utilisation"] == pytest.approx(2 / 6)
    mid = summary.loc["MID_INS"]
    # Crescent is inactive (still its PRIMARY territory); Beacon's SECONDARY row; the only advisor is inactive
    assert (mid["Clients"], mid["Active clients"], mid["AUM (USD)"], mid["Secondary clients"]) == (1, 0, 30.0, 1)
    assert (mid["Advisors"], mid["Capacity"]) == (0, 0) and math.isnan(mid["Utilisation"])
    assert summary.loc["SOU_RET", "Clients"] == 0  # issued, empty: listed
    assert summary.loc["UNASSIGNED", "Clients"] == 1
    assert summary["Clients"].sum() == 5  # every client has one PRIMARY row
    assert summary.index[0] == "NOR_RET"  # largest first


def test_territory_clients_lists_primary_and_secondary_rows_and_searches_name_key_parent_advisor():
    clients = territories.territory_clients(FACT, CLIENTS, "MID_INS")
    assert sorted(zip(clients["client_key"], clients["Assignment"])) == [("k:2", "SECONDARY"), ("k:3", "PRIMARY")]
    nor = territories.territory_clients(FACT, CLIENTS, "NOR_RET")
    assert nor["Client"].tolist() == ["Atlas Capital", "Beacon Wealth"]  # by AUM, largest first
    assert territories.territory_clients(FACT, CLIENTS, "NOR_RET", "  beacon ")["client_key"].tolist() == ["k:2"]
    assert territories.territory_clients(FACT, CLIENTS, "NOR_RET", "A@X.COM")["client_key"].tolist() == ["k:1"]
    assert territories.territory_clients(FACT, CLIENTS, "NOR_RET", "P1")["client_key"].tolist() == ["k:1", "k:2"]
    assert territories.territory_clients(FACT, CLIENTS, "NOR_RET", "k:(1)").empty  # plain text, not a pattern


def test_territory_advisors_are_the_rosters_and_those_holding_its_clients():
    table = territories.territory_advisors(FACT, ADVISORS, "NOR_RET").set_index("Advisor")
    assert sorted(table.index) == ["a@x.com", "b@x.com"]
    assert table.loc["a@x.com", ["Clients here", "Clients in all"]].tolist() == [1, 2]  # Atlas here, Echo in WES_RET
    assert table.loc["a@x.com", "Utilisation"] == pytest.approx(2.0)
    assert table.loc["b@x.com", ["Clients here", "Clients in all"]].tolist() == [1, 1]


def test_the_rules_that_placed_a_territorys_clients():
    rules = frame(
        TerritoryRules,
        [
            dict(kind="territory rule", rule_id="by-region-and-segment", priority=1000,
                 criteria='{"region": {"not_null": true}, "segment": {"eq": "Retail"}}', target="client", rules_version=V),
        ],
    )  # fmt: skip
    used = territories.territory_rules_used(FACT, rules, "MID_INS").set_index("Placed by")
    assert used.loc["by-region-and-segment", ["Kind", "When", "Clients"]].tolist() == [
        "territory rule", "region not_null true; segment eq Retail", 1,
    ]  # fmt: skip
    assert used.loc["parent_org", "Assignment"] == "SECONDARY"
    assert "parent" in used.loc["parent_org", "Kind"]
    assert "no rule matched" in territories.territory_rules_used(FACT, rules, "UNASSIGNED").loc[0, "Kind"]


# --- advisors ---------------------------------------------------------------------------------------------------


def test_advisor_load_against_capacity_with_the_reason_for_an_overload():
    load = advisors.advisor_load(FACT, ADVISORS).set_index("Advisor")
    assert load.loc["a@x.com", ["Clients", "Capacity"]].tolist() == [2, 1]  # Atlas and Echo; Crescent is inactive
    assert load.loc["a@x.com", "Over capacity"] and load.loc["a@x.com", "Utilisation"] == pytest.approx(2.0)
    # its territories hold 3 active clients (NOR_RET 2, WES_RET 1) for 6 places (Ann 1 + Bob 5): not over as a whole
    assert "hold 3 active clients for 6 places" in load.loc["a@x.com", "Why over capacity"]
    assert load.loc["b@x.com", ["Clients", "Capacity", "Over capacity", "Why over capacity"]].tolist() == [1, 5, False, ""]
    assert load.loc["c@x.com", ["Clients", "Active"]].tolist() == [0, False]
    assert load.index[0] == "a@x.com"  # the highest utilisation first


def test_an_advisor_whose_territories_are_over_capacity_as_a_whole_says_so():
    small = ADVISORS.assign(capacity=pd.array([1, 1, 3], dtype="Int64"))
    load = advisors.advisor_load(FACT, small).set_index("Advisor")
    # capacities 1 and 1: NOR_RET and WES_RET hold 3 active clients for the 2 places of Ann and Bob
    assert (
        "NOR_RET, WES_RET) are over capacity as a whole: 3 active clients for 2 places"
        in load.loc["a@x.com", "Why over capacity"]
    )
    assert not load.loc["b@x.com", "Over capacity"]


def test_advisor_changes_keep_the_advisor_moves_and_say_why():
    moved = advisors.advisor_changes(overview.primary_changes(ASSIGNMENT_HISTORY, T2))
    assert moved["client_key"].tolist() == ["k:2"]
    assert advisors.reason_in_words(moved["Advisor reason"]).tolist() == ["its advisor was over capacity"]


# --- account families -------------------------------------------------------------------------------------------


def test_family_rollup_spans_and_split_families():
    rollup = families.family_rollup(CLIENTS, FACT).set_index("Parent organisation")
    assert sorted(rollup.index) == ["P1", "P2"]  # Delta has no parent: not a family
    p1 = rollup.loc["P1"]
    assert p1[["Clients", "Active clients", "AUM (USD)", "Territories", "Advisors", "Secondary rows"]].tolist() == [
        3,
        2,
        180.0,
        2,
        2,
        1,
    ]
    assert p1["Split"] and p1["Territory list"] == "MID_INS, NOR_RET"
    assert rollup.loc["P2", ["Clients", "Territories", "Split"]].tolist() == [1, 1, False]


def test_treemap_rectangles_have_areas_in_proportion_and_do_not_overlap():
    values = pd.Series([60.0, 30.0, 20.0, 10.0, 5.0, 0.0], index=list("abcdef"))
    rects = families.treemap(values, width=100, height=50)
    assert rects["label"].tolist() == list("abcde")  # zero is not drawn; largest first
    area = (rects["x2"] - rects["x"]) * (rects["y2"] - rects["y"])
    np.testing.assert_allclose(area.to_numpy(), values.iloc[:5].to_numpy() * 5000 / 125)
    assert (rects["x"] >= -1e-9).all() and (rects["x2"] <= 100 + 1e-9).all() and (rects["y2"] <= 50 + 1e-9).all()
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            a, b = rects.iloc[i], rects.iloc[j]
            overlap_x = min(a.x2, b.x2) - max(a.x, b.x)
            overlap_y = min(a.y2, b.y2) - max(a.y, b.y)
            assert overlap_x <= 1e-9 or overlap_y <= 1e-9, (a.label, b.label)


# --- rules preview ----------------------------------------------------------------------------------------------

CHANGES = pd.DataFrame(
    {
        "client_key": ["k:1", "k:2", "k:5"],
        "territory_before": ["NOR_RET", "NOR_RET", "WES_RET"],
        "territory_after": ["WES_RET", "WES_RET", "WES_RET"],
        "advisor_before": ["a@x.com", "b@x.com", "a@x.com"],
        "advisor_after": ["a@x.com", "a@x.com", "b@x.com"],
        "assigned_by_after": ["west", "west", "by-region-and-segment"],
        "change": ["territory", "territory and advisor", "advisor"],
        "candidate_version": ["0123456789ab"] * 3,
    }
)


def test_preview_flows_loads_and_headline():
    assert preview.flows(CHANGES).to_dict("records") == [{"From territory": "NOR_RET", "To territory": "WES_RET", "Clients": 2}]
    load = preview.territory_load(FACT, CHANGES).set_index("Territory")
    assert load.loc["NOR_RET", ["Clients before", "Clients after", "Change"]].tolist() == [2, 0, -2]
    assert load.loc["WES_RET", ["Clients before", "Clients after", "Change"]].tolist() == [1, 3, 2]
    assert "MID_INS" not in load.index  # Crescent is inactive: no active client there before or after
    people = preview.advisor_load(FACT, CHANGES, ADVISORS).set_index("Advisor")
    # Ann: Atlas + Echo, loses Echo, gains Beacon -> 2; Bob: Beacon, loses it, gains Echo -> 1
    assert people.loc["a@x.com", ["Clients before", "Clients after"]].tolist() == [2, 2]
    assert people.loc["b@x.com", ["Clients before", "Clients after"]].tolist() == [1, 1]
    assert people.loc["a@x.com", "Over capacity after"] and not people.loc["b@x.com", "Over capacity after"]
    assert preview.preview_headline(CHANGES) == {"Clients changing": 3, "Changing territory": 2, "Changing advisor": 2}
    diff = preview.client_diff(CHANGES, CLIENTS)
    assert diff["Client"].tolist() == ["Atlas Capital", "Beacon Wealth", "Echo"]


def test_preview_loads_equal_the_rules_engines_own_counts(reference):
    """The after-side computed from the diff alone equals what logic.rules.preview counts on the candidate's star."""
    from crm_territory.logic.placement.pipeline import build_star
    from crm_territory.logic.rules.loader import parse_rules
    from crm_territory.logic.rules.preview import preview as rules_preview
    from crm_territory_tests.unit.test_preview import CANDIDATE, SEED_RULE
    from crm_territory_tests.unit.test_preview import CLIENTS as BOOK

    current = build_star(BOOK, parse_rules(SEED_RULE, "active.yaml"), reference, issued_at=utc("2026-01-01"))
    candidate = build_star(
        BOOK, parse_rules(CANDIDATE, "candidate.yaml"), reference, previous_territories=current.territory_dim, issued_at=T2
    )
    roster = pd.DataFrame({"advisor_email": ["a@x.com", "b@x.com", "c@x.com", "e@x.com"], "capacity": [2, 2, 2, 2]})
    engine = rules_preview(current.assignments.fact, candidate, roster, current.territory_dim)
    ours = preview.territory_load(current.assignments.fact, engine.changes).set_index("Territory")
    theirs = engine.territories.set_index("territory_id")
    theirs = theirs[(theirs["clients_before"] > 0) | (theirs["clients_after"] > 0)]
    assert sorted(ours.index) == sorted(theirs.index)
    assert ours.loc[theirs.index, "Clients after"].tolist() == theirs["clients_after"].tolist()
    mine = preview.advisor_load(current.assignments.fact, engine.changes, roster).set_index("Advisor")
    engine_advisors = engine.advisors.set_index("advisor_email")
    assert mine.loc[engine_advisors.index, "Clients after"].tolist() == engine_advisors["clients_after"].tolist()
    assert len(engine.changes) > 0


# --- history ----------------------------------------------------------------------------------------------------


def test_owner_on_a_date_and_the_clients_timeline():
    before = history.owner_on_date(ASSIGNMENT_HISTORY, "k:2", utc("2026-03-15"))
    assert before[["Assignment", "Territory", "Advisor"]].values.tolist() == [
        ["PRIMARY", "NOR_RET", "a@x.com"], ["SECONDARY", "MID_INS", None],
    ]  # fmt: skip
    after = history.owner_on_date(ASSIGNMENT_HISTORY, "k:2", T2)  # at the instant of the change: the new version
    assert after.loc[0, "Advisor"] == "b@x.com"
    assert history.owner_on_date(ASSIGNMENT_HISTORY, "k:4", utc("2026-03-15")).empty  # not yet known
    now = utc("2026-05-01")
    timeline = history.client_timeline(ASSIGNMENT_HISTORY, "k:2", now)
    assert timeline[["Territory", "Advisor", "From", "To", "Open"]].values.tolist() == [
        ["NOR_RET", "a@x.com", T1, T2, False], ["MID_INS", "(none)", T1, now, True], ["NOR_RET", "b@x.com", T2, now, True],
    ]  # fmt: skip
    assert history.client_versions(CLIENT_HISTORY, "k:2")["Name"].tolist() == ["Beacon", "Beacon Wealth"]


def test_find_clients_by_name_or_key_names_starting_with_it_first():
    clients = CLIENTS.assign(client_name=["Atlas Capital", "Beacon Wealth", "Crescent", "Delta Atlas", "Echo"])
    assert history.find_clients(clients, " atlas ")["client_key"].tolist() == ["k:1", "k:4"]
    assert history.find_clients(clients, "k:5")["Client"].tolist() == ["Echo"]
    assert history.find_clients(clients, "(").empty and history.find_clients(clients, "   ").empty
    assert len(history.find_clients(clients, "k:", limit=2)) == 2


def test_territory_map_as_of_a_date():
    mapped = history.territory_map(ASSIGNMENT_HISTORY, utc("2026-03-15")).set_index("Territory")
    # at mid-March: k:1 and k:2 in NOR_RET (both with Ann), k:3 in MID_RET, k:6 in WES_RET
    assert mapped["Active clients"].to_dict() == {"MID_RET": 1, "NOR_RET": 2, "WES_RET": 1}
    assert mapped.loc["NOR_RET", ["Advisors", "Advisor list"]].tolist() == [1, "a@x.com"]
    now = history.territory_map(ASSIGNMENT_HISTORY, T2).set_index("Territory")
    assert now["Active clients"].to_dict() == {"NOR_RET": 2, "UNASSIGNED": 1}  # k:3 is inactive now, k:6 gone
    assert now.loc["NOR_RET", "Advisor list"] == "a@x.com, b@x.com"


# --- data quality -----------------------------------------------------------------------------------------------


def test_unknown_spellings_with_the_line_to_add():
    spellings = quality.unknown_spellings(CLIENTS)
    assert spellings[["Field", "Spelling", "Clients", "Alias file", "Line to add"]].values.tolist() == [
        ["region", "Pacific Rim", 1, "reference/region_aliases.csv", "Pacific Rim,<canonical region>"],
        ["segment", "Other, Misc", 1, "reference/segment_aliases.csv", '"Other, Misc",<canonical segment>'],
    ]
    assert quality.unknown_spellings(CLIENTS.assign(data_issues=None)).empty


def test_quarantine_by_source_file_and_reason():
    rows = frame(
        QuarantinedClients,
        [
            dict(source_system="crm_api", source_page=1, reason="missing client_name", original_values="{}", ingested_at=T1),
            dict(source_system="crm_api", source_page=2, reason="missing client_name", original_values="{}", ingested_at=T2),
            dict(source_system="hubspot", source_file="hubspot/a.csv", source_row=3, reason="bad", original_values="{}", ingested_at=T1),
        ],
    )  # fmt: skip
    summary = quality.quarantine_summary(rows)
    assert summary[["Source", "File", "Reason", "Rows", "Last read"]].values.tolist() == [
        ["crm_api", "(CRM API)", "missing client_name", 2, T2], ["hubspot", "hubspot/a.csv", "bad", 1, T1],
    ]  # fmt: skip


def test_possible_duplicates_with_the_decision_lines():
    pairs = frame(
        ClientMatches,
        [
            dict(record_a="crm_api:1", record_b="csv_drop:9", client_name_a="Atlas", client_name_b="Atlas Cap", name_score=90.0,
                 name_difference="typo or abbreviation", name_points=95.0, region_agreement="agree", region_points=1.0,
                 parent_org_agreement="unknown", parent_org_points=0.0, advisor_email_agreement="unknown", advisor_email_points=0.0,
                 advisor_domain_agreement="unknown", advisor_domain_points=0.0, score=88.0, decision="possible",
                 decided_by="matcher", merged=False, client_key_a="crm_api:1", client_key_b="csv_drop:9"),
            dict(record_a="crm_api:2", record_b="crm_api:3", client_name_a="B", client_name_b="B", name_score=100.0,
                 name_difference="same words", name_points=100.0, region_agreement="agree", region_points=1.0,
                 parent_org_agreement="agree", parent_org_points=1.0, advisor_email_agreement="agree", advisor_email_points=1.0,
                 advisor_domain_agreement="agree", advisor_domain_points=1.0, score=104.0, decision="match",
                 decided_by="matcher", merged=True, client_key_a="crm_api:2", client_key_b="crm_api:2"),
        ],
    )  # fmt: skip
    table = quality.possible_duplicates(pairs)
    assert table["Record A"].tolist() == ["crm_api:1"]  # the match is decided: not to review
    assert table.loc[0, "Same client (line to add)"] == "crm_api:1,csv_drop:9,must_link,"
    assert table.loc[0, "Different clients (line to add)"] == "crm_api:1,csv_drop:9,cannot_link,"


def test_rejected_and_deferred_files():
    manifest = frame(
        IngestManifest,
        [
            dict(source_system="csv_drop", batch="a.csv", status="loaded", rows_read=3, rows_loaded=3, rows_quarantined=0, ingested_at=T1),
            dict(source_system="csv_drop", batch="b.csv", status="rejected", rows_read=0, rows_loaded=0, rows_quarantined=0,
                 message="not UTF-8", ingested_at=T1),
        ],
    )  # fmt: skip
    assert quality.file_problems(manifest)[["File", "Status", "Why"]].values.tolist() == [["b.csv", "rejected", "not UTF-8"]]
    assert quality.ingest_totals(manifest)["Rows loaded"].tolist() == [3, 0]
