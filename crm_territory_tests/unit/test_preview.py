"""The preview diff: exactly the clients whose territory or advisor a candidate would change, and the balance."""

import pandas as pd

from crm_territory.logic.placement.pipeline import build_star
from crm_territory.logic.rules.loader import parse_rules
from crm_territory.logic.rules.preview import preview
from crm_territory_tests.support import utc

CLIENTS = pd.DataFrame(
    {
        "client_key": ["csv_drop:1", "csv_drop:2", "csv_drop:3", "csv_drop:4"],
        "client_name": ["Atlas", "Beacon", "Crescent", "Delta"],
        "region": ["Northeast", "Northeast", "Midwest", "Southwest"],
        "segment": ["Institutional", "Retail", "Institutional", "Retail"],
        "parent_org": [None, None, None, None],
        "primary_advisor_email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com"],
        "is_active": [True, True, True, False],
        "aum_usd": [1e9, 1e6, 3e8, 2e6],
        "business_type": ["Corporation", "Individual", "Trust", "Individual"],
    }
)
SEED_RULE = """
version: 1
territories:
  rules:
    - id: by-region-and-segment
      priority: 1000
      when: {region: {not_null: true}, segment: {not_null: true}}
      assign: client
"""
CANDIDATE = (
    SEED_RULE
    + """
    - id: southwest-retail-into-west
      priority: 50
      when: {region: {eq: Southwest}, segment: {eq: Retail}}
      assign: {region: West, segment: Retail}
overrides:
  - client_key: "csv_drop:2"
    advisor: e@x.com
"""
)


def test_preview_lists_each_change_and_nothing_else(reference):
    current = build_star(CLIENTS, parse_rules(SEED_RULE, "active.yaml"), reference, issued_at=utc("2026-01-01"))
    candidate_rules = parse_rules(CANDIDATE, "candidate.yaml")
    candidate = build_star(
        CLIENTS, candidate_rules, reference, previous_territories=current.territory_dim, issued_at=utc("2026-02-01")
    )
    advisors = pd.DataFrame({"advisor_email": ["a@x.com", "b@x.com", "c@x.com", "e@x.com"], "capacity": [2, 2, 2, 2]})
    result = preview(current.assignments.fact, candidate, advisors, current.territory_dim)

    # client 2: pinned to a new advisor; client 4 is inactive, so its move is not a current change; 1 and 3 stay
    assert result.changes.to_dict("records") == [
        {
            "client_key": "csv_drop:2",
            "territory_before": "NOR_RET",
            "territory_after": "NOR_RET",
            "advisor_before": "b@x.com",
            "advisor_after": "e@x.com",
            "assigned_by_after": "by-region-and-segment",
            "change": "advisor",
            "candidate_version": candidate_rules.version,
        }
    ]
    advisors_after = result.advisors.set_index("advisor_email")
    assert advisors_after.loc["b@x.com", ["clients_before", "clients_after"]].tolist() == [1, 0]
    assert advisors_after.loc["e@x.com", ["clients_before", "clients_after"]].tolist() == [0, 1]
    balance = result.balance.set_index("measure")
    assert balance.loc["max advisor utilisation", "before"] == 0.5 and balance.loc["max advisor utilisation", "after"] == 0.5
    # the candidate would issue WES_RET for the inactive Southwest client: shown, not stored
    assert result.new_territories["territory_id"].tolist() == ["WES_RET"]
    assert "WES_RET" not in set(current.territory_dim["territory_id"])


def test_an_identical_candidate_changes_nothing(reference):
    rules = parse_rules(SEED_RULE, "active.yaml")
    current = build_star(CLIENTS, rules, reference, issued_at=utc("2026-01-01"))
    again = build_star(CLIENTS, rules, reference, previous_territories=current.territory_dim, issued_at=utc("2026-02-01"))
    result = preview(current.assignments.fact, again, pd.DataFrame(columns=["advisor_email", "capacity"]), current.territory_dim)
    assert result.changes.empty and result.new_territories.empty
    assert (result.territories["change"] == 0).all()
