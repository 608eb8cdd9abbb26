"""Static analysis of a rules file: each kind of finding, and a clean file with none."""

import textwrap

import pytest

from crm_territory.logic.rules.analysis import Finding, analyse_rules, raise_on_errors
from crm_territory.logic.rules.loader import load_rules, parse_rules
from crm_territory.logic.rules.model import RulesError
from crm_territory_tests.support import REPO_ROOT

COLUMNS = {
    "client_key", "client_name", "region", "segment", "parent_org", "primary_advisor_email", "is_active",
    "aum_usd", "business_type",
}  # fmt: skip
REGIONS = ["Northeast", "West"]
SEGMENTS = ["Institutional", "Retail"]
# Reaches every (region, segment): keeps the unreachable-territory check quiet where a test is about something else.
SEED_RULE = "    - {id: seed, priority: 1000, when: {region: {not_null: true}, segment: {not_null: true}}, assign: client}\n"


def analyse(yaml_text: str, regions=REGIONS, segments=SEGMENTS) -> list[Finding]:
    rules = parse_rules("version: 1\n" + yaml_text, "candidate.yaml")
    return analyse_rules(rules, columns=COLUMNS, regions=regions, segments=segments)


def block(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def territory_rules(*rules: str, seed: bool = True) -> str:
    return "territories:\n  rules:\n" + "".join(f"    - {r}\n" for r in rules) + (SEED_RULE if seed else "")


# --- clean files -------------------------------------------------------------------------------


def test_the_committed_rules_are_clean_against_the_reference_data(reference):
    rules = load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml")
    client_dim_columns = {"client_key", "client_name", "region", "segment", "parent_org", "primary_advisor_email", "is_active"}
    assert analyse_rules(rules, columns=client_dim_columns, regions=reference.regions, segments=reference.segments) == []


def test_the_worked_example_is_clean_against_the_reference_data(reference):
    rules = load_rules(REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml")
    assert analyse_rules(rules, columns=COLUMNS, regions=reference.regions, segments=reference.segments) == []


# --- errors: what the file refers to -----------------------------------------------------------


def test_unknown_columns_are_errors_wherever_criteria_appear():
    findings = analyse(
        block(
            """
            segmentation:
              tiers:
                - {id: big, segment: Institutional, when: {aum: {gte: 1}}}
            secondary:
              overlays:
                - {id: f, overlay: FOUNDATIONS, owner_role: F, when: {type: {eq: Foundation}}}
            """
        )
        + territory_rules(
            "{id: r, priority: 1, when: {region: {eq: West}, adviser: {is_null: true}}, assign: {region: West, segment: Retail}}"
        )
    )
    assert [(f.severity, f.key) for f in findings] == [
        ("error", "segmentation.tiers[0].when.aum"),
        ("error", "territories.rules[0].when.adviser"),
        ("error", "secondary.overlays[0].when.type"),
    ]
    assert findings[0].message.startswith(
        "unknown column 'aum': the clients have no such column (known: aum_usd, business_type, client_key,"
    )


def test_unknown_regions_and_segments_in_targets_are_errors():
    findings = analyse(
        block(
            """
            segmentation:
              tiers:
                - {id: t, segment: Insurance, when: {aum_usd: {gte: 1}}}
            overrides:
              - {client_key: 'csv_drop:1', assign: {region: East, segment: Retail}}
              - {client_key: 'csv_drop:2', advisor: a@example.com}
            exclusions:
              - {client_key: 'csv_drop:3', not_in: {region: West, segment: Retial}}
            """
        )
        + "territories:\n  owner_roles: {Wholesale: Wholesaler, Retail: Retail Advisor}\n  rules:\n"
        + "    - {id: r, priority: 1, when: {region: {eq: West}}, assign: {region: Nrtheast, segment: Retail}}\n"
        + SEED_RULE
    )
    assert findings == [
        Finding("error", "segmentation.tiers[0].segment", "unknown segment 'Insurance' (known segments: Institutional, Retail)"),
        Finding(
            "error", "territories.owner_roles.Wholesale", "unknown segment 'Wholesale' (known segments: Institutional, Retail)"
        ),
        Finding("error", "territories.rules[0].assign.region", "unknown region 'Nrtheast' (known regions: Northeast, West)"),
        Finding("error", "overrides[0].assign.region", "unknown region 'East' (known regions: Northeast, West)"),
        Finding("error", "exclusions[0].not_in.segment", "unknown segment 'Retial' (known segments: Institutional, Retail)"),
    ]


# --- warnings: rules that can never fire -------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "condition", "reason"),
    [
        ("aum_usd", "{gte: 5, lt: 5}", "gte 5 and lt 5 leave no number"),
        ("aum_usd", "{gt: 5, lte: 5}", "gt 5 and lte 5 leave no number"),
        (
            "business_type",
            "{eq: Trust, not_in: [Trust, Foundation]}",
            "every value eq/in allow ('Trust') is excluded by ne/not_in",
        ),
        ("business_type", "{eq: Trust, ne: Trust}", "every value eq/in allow ('Trust') is excluded by ne/not_in"),
        ("business_type", "{in: []}", "in: [] matches nothing"),
        (
            "business_type",
            "{eq: Trust, in: [Foundation, Individual]}",
            "eq/in allow no common value (eq 'Trust'; in ['Foundation', 'Individual'])",
        ),
        ("business_type", "{eq: Trust, regex: 'Found.*'}", "no value eq/in allow matches regex 'Found.*'"),
        ("business_type", "{is_null: true, not_null: true}", "is_null and not_null together"),
        ("business_type", "{is_null: true, eq: Trust}", "is_null together with eq, which a missing value never satisfies"),
        ("aum_usd", "{is_null: true, gte: 1}", "is_null together with gte, which a missing value never satisfies"),
        ("region", "{eq: Nrtheast}", "region is never 'Nrtheast' (not a known region)"),
        ("segment", "{in: [Wholesale, Insurance]}", "segment is never 'Wholesale' or 'Insurance' (not a known segment)"),
    ],
)
def test_contradictory_criteria_can_never_fire(column, condition, reason):
    findings = analyse(
        territory_rules(f"{{id: odd, priority: 1, when: {{{column}: {condition}}}, assign: {{region: West, segment: Retail}}}}")
    )
    assert findings == [Finding("warning", f"territories.rules[0].when.{column}", f"can never fire: {reason}")]


def test_contradictions_in_tiers_and_overlays_are_found_too():
    findings = analyse(
        block(
            """
            segmentation:
              tiers:
                - {id: t, segment: Retail, when: {aum_usd: {gt: 0, lt: 0}}}
            secondary:
              overlays:
                - {id: o, overlay: NOBODY, owner_role: X, when: {business_type: {in: [A], not_in: [A]}}}
            """
        )
        + territory_rules()
    )
    assert [(f.severity, f.key) for f in findings] == [
        ("warning", "segmentation.tiers[0].when.aum_usd"),
        ("warning", "secondary.overlays[0].when.business_type"),
    ]


def test_a_rule_behind_an_earlier_catch_all_can_never_fire():
    # file order is not evaluation order: the catch-all is second in the file but has the lower priority number
    findings = analyse(
        territory_rules(
            "{id: west-retail, priority: 50, when: {region: {eq: West}}, assign: {region: West, segment: Retail}}",
            "{id: everyone, priority: 5, assign: {region: Northeast, segment: Retail}}",
        )
    )
    assert findings[:2] == [
        Finding(
            "warning",
            "territories.rules[0]",
            "can never fire: the earlier rule 'everyone' (territories.rules[1]) matches every client this one matches",
        ),
        Finding(
            "warning",
            "territories.rules[2]",
            "can never fire: the earlier rule 'everyone' (territories.rules[1]) matches every client this one matches",
        ),
    ]
    # and since nothing else fires, only (Northeast, Retail) is reachable
    assert [f.message for f in findings[2:]] == [
        "no rule can reach territory (Northeast, Institutional)",
        "no rule can reach territory (West, Institutional)",
        "no rule can reach territory (West, Retail)",
    ]


def test_a_catch_all_by_client_shadows_rules_on_known_territories_but_not_on_missing_ones():
    findings = analyse(
        territory_rules(
            "{id: own, priority: 1, assign: client}",
            "{id: west-retail, priority: 2, when: {region: {eq: West}, segment: {eq: Retail}}, assign: {region: Northeast, segment: Retail}}",
            "{id: no-region, priority: 3, when: {region: {is_null: true}}, assign: {region: Northeast, segment: Retail}}",
            seed=False,
        )
    )
    # `assign: client` only takes clients whose region and segment are known: the no-region rule still fires
    assert findings == [
        Finding(
            "warning",
            "territories.rules[1]",
            "can never fire: the earlier rule 'own' (territories.rules[0]) matches every client this one matches",
        )
    ]


def test_a_rule_with_the_same_criteria_as_an_earlier_one_can_never_fire():
    findings = analyse(
        territory_rules(
            "{id: a, priority: 1, when: {business_type: {eq: Trust}}, assign: {region: West, segment: Retail}}",
            "{id: b, priority: 2, when: {business_type: {eq: Trust}, aum_usd: {gte: 10}}, assign: {region: Northeast, segment: Retail}}",
        )
    )
    assert findings == [
        Finding(
            "warning",
            "territories.rules[1]",
            "can never fire: the earlier rule 'a' (territories.rules[0]) matches every client this one matches",
        )
    ]


def test_an_exclusion_can_pass_clients_on_so_the_catch_all_does_not_shadow():
    findings = analyse(
        "exclusions:\n  - {client_key: 'csv_drop:1', not_in: {region: Northeast, segment: Retail}}\n"
        + territory_rules(
            "{id: everyone, priority: 5, assign: {region: Northeast, segment: Retail}}",
            "{id: west-retail, priority: 50, when: {region: {eq: West}}, assign: {region: West, segment: Retail}}",
        )
    )
    # the seed rule and west-retail stay reachable for the excluded client; nothing to report
    assert findings == []


def test_a_tier_behind_a_catch_all_tier_can_never_fire():
    findings = analyse(
        block(
            """
            segmentation:
              tiers:
                - {id: everyone-retail, segment: Retail}
                - {id: big, segment: Institutional, when: {aum_usd: {gte: 1000000}}}
            """
        )
        + territory_rules()
    )
    assert findings == [
        Finding(
            "warning",
            "segmentation.tiers[1]",
            "can never fire: the earlier tier 'everyone-retail' (segmentation.tiers[0]) matches every client this one matches",
        )
    ]


# --- warnings: overlaps at one priority --------------------------------------------------------


def test_rules_at_the_same_priority_that_can_both_match_overlap():
    findings = analyse(
        territory_rules(
            "{id: retail, priority: 10, when: {segment: {eq: Retail}}, assign: {region: West, segment: Retail}}",
            "{id: west, priority: 10, when: {region: {eq: West}}, assign: {region: West, segment: Institutional}}",
        )
    )
    assert findings == [
        Finding(
            "warning",
            "territories.rules[1]",
            "overlaps rule 'retail' (territories.rules[0]) at the same priority 10: a client matching both goes to "
            "'retail' by file order; give them different priorities or make their criteria disjoint",
        )
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{region: {eq: West}}", "{region: {eq: Northeast}}"),  # eq vs eq
        ("{business_type: {in: [Trust, Foundation]}}", "{business_type: {in: [Individual]}}"),  # disjoint value sets
        ("{business_type: {eq: Trust}}", "{business_type: {in: [Individual, Family Office]}}"),
        ("{aum_usd: {lt: 5000000}}", "{aum_usd: {gte: 5000000}}"),  # ranges that do not meet
        ("{aum_usd: {gte: 1, lte: 10}}", "{aum_usd: {gt: 10}}"),
        ("{business_type: {is_null: true}}", "{business_type: {not_null: true}}"),
    ],
)
def test_provably_disjoint_rules_at_one_priority_do_not_overlap(first, second):
    findings = analyse(
        territory_rules(
            f"{{id: a, priority: 10, when: {first}, assign: {{region: West, segment: Retail}}}}",
            f"{{id: b, priority: 10, when: {second}, assign: {{region: West, segment: Institutional}}}}",
        )
    )
    assert findings == []


def test_rules_at_different_priorities_never_overlap():
    findings = analyse(
        territory_rules(
            "{id: retail, priority: 10, when: {segment: {eq: Retail}}, assign: {region: West, segment: Retail}}",
            "{id: west, priority: 11, when: {region: {eq: West}}, assign: {region: West, segment: Institutional}}",
        )
    )
    assert findings == []


def test_a_by_client_rule_and_a_missing_region_rule_are_disjoint():
    findings = analyse(
        territory_rules(
            "{id: own, priority: 10, assign: client}",
            "{id: no-region, priority: 10, when: {region: {is_null: true}}, assign: {region: West, segment: Retail}}",
            seed=False,
        )
    )
    assert findings == []


# --- warnings: territories no rule can reach ---------------------------------------------------


def test_territories_no_rule_can_reach():
    findings = analyse(
        "overrides:\n  - {client_key: 'csv_drop:1', assign: {region: West, segment: Institutional}}\n"
        + territory_rules(
            "{id: west-retail, priority: 1, when: {business_type: {eq: Retail}}, assign: {region: West, segment: Retail}}",
            "{id: northeast-own, priority: 2, when: {region: {eq: Northeast}, segment: {in: [Retail]}}, assign: client}",
            "{id: never, priority: 3, when: {aum_usd: {gte: 1, lt: 1}}, assign: {region: Northeast, segment: Institutional}}",
            seed=False,
        )
    )
    assert findings == [
        Finding("warning", "territories.rules[2].when.aum_usd", "can never fire: gte 1 and lt 1 leave no number"),
        # a rule that can never fire reaches nothing; an override is not a rule
        Finding("warning", "territories.rules", "no rule can reach territory (Northeast, Institutional)"),
        Finding(
            "warning",
            "territories.rules",
            "no rule can reach territory (West, Institutional); only overrides place clients there",
        ),
    ]


def test_a_by_client_rule_reaches_every_pair_its_criteria_allow():
    findings = analyse(
        territory_rules(
            "{id: own, priority: 1, when: {region: {ne: West}, segment: {regex: 'Inst.*'}}, assign: client}", seed=False
        ),
        regions=["Northeast", "West", "Midwest"],
    )
    assert [f.message for f in findings] == [
        "no rule can reach territory (Northeast, Retail)",
        "no rule can reach territory (West, Institutional)",
        "no rule can reach territory (West, Retail)",
        "no rule can reach territory (Midwest, Retail)",
    ]


# --- raising -----------------------------------------------------------------------------------


def test_raise_on_errors_lists_every_error_and_ignores_warnings():
    findings = [
        Finding("error", "territories.rules[0].when.aum", "unknown column 'aum'"),
        Finding("warning", "territories.rules[1]", "can never fire: ..."),
        Finding("error", "exclusions[0].not_in.region", "unknown region 'East'"),
    ]
    with pytest.raises(RulesError) as caught:
        raise_on_errors(findings, "data/rules/territory_rules.yaml")
    assert caught.value.problems == [
        ("territories.rules[0].when.aum", "unknown column 'aum'"),
        ("exclusions[0].not_in.region", "unknown region 'East'"),
    ]
    assert str(caught.value).startswith("data/rules/territory_rules.yaml: the rules file is invalid (2 problems):")
    raise_on_errors([f for f in findings if f.severity == "warning"], "x.yaml")  # warnings alone do not raise
    raise_on_errors([], "x.yaml")
