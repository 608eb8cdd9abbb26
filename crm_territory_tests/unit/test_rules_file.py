"""The rules file: loading, every validation error with its key path and reason, and the version hash."""

import hashlib
import textwrap

import pytest

from crm_territory.logic.rules.loader import load_rules, parse_rules
from crm_territory.logic.rules.model import RulesError, as_text
from crm_territory_tests.support import REPO_ROOT

COMMITTED = REPO_ROOT / "data" / "rules" / "territory_rules.yaml"
WORKED_EXAMPLE = REPO_ROOT / "data" / "rules" / "examples" / "worked_example.yaml"

# The shape documented in crm_territory/logic/rules/model.py, every section present.
FULL = """\
version: 1
segmentation:
  precedence: rules
  tiers:
    - id: tier-institutional
      segment: Institutional
      when: {aum_usd: {gte: 250000000}}
    - id: tier-private-wealth
      segment: Private Wealth
      when: {aum_usd: {gte: 5000000, lt: 250000000}, business_type: {in: [Family Office, Individual, Trust]}}
territories:
  owner_roles: {Institutional: Institutional Relationship Manager}
  rules:
    - id: atlas-group
      priority: 10
      when: {parent_org: {eq: Atlas Holdings}}
      assign: {region: Northeast, segment: Institutional}
    - id: southwest-retail-into-west
      priority: 50
      when: {region: {eq: Southwest}, segment: {eq: Retail}}
      assign: {region: West, segment: Retail}
    - id: by-region-and-segment
      priority: 1000
      when: {region: {not_null: true}, segment: {not_null: true}}
      assign: client
overrides:
  - client_key: "csv_drop:1"
    assign: {region: Northeast, segment: Institutional}
    advisor: Advisor1@Example.com
exclusions:
  - client_key: "crm_api:100007"
    not_in: {region: Northeast, segment: Retail}
secondary:
  parent_org: true
  overlays:
    - id: foundations
      overlay: FOUNDATIONS
      owner_role: Foundations Specialist
      when: {business_type: {eq: Foundation}}
"""


def rules_text(body: str) -> str:
    return "version: 1\n" + textwrap.dedent(body)


def problems_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "candidate.yaml")
    assert str(caught.value).startswith("candidate.yaml: ")
    return caught.value.problems


def only_problem(text: str) -> tuple[str, str]:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- loading -----------------------------------------------------------------------------------


def test_the_documented_shape_loads_into_typed_sections():
    rules = parse_rules(FULL, "full.yaml")
    assert rules.source == "full.yaml"
    assert rules.segmentation.precedence == "rules"
    assert [t.id for t in rules.segmentation.tiers] == ["tier-institutional", "tier-private-wealth"]
    pw = rules.segmentation.tiers[1].when
    assert (pw["aum_usd"].gte, pw["aum_usd"].lt) == (5_000_000.0, 250_000_000.0)
    assert pw["business_type"].in_ == ["Family Office", "Individual", "Trust"]
    assert rules.territories.owner_roles == {"Institutional": "Institutional Relationship Manager"}
    atlas, southwest, seed = rules.territories.rules
    assert (atlas.id, atlas.priority, atlas.assign.pair()) == ("atlas-group", 10, ("Northeast", "Institutional"))
    assert southwest.when["region"].eq == "Southwest"
    assert seed.assigns_client and seed.assign == "client"
    assert seed.when["region"].not_null is True and seed.when["segment"].not_null is True
    assert rules.overrides[0].client_key == "csv_drop:1"
    assert rules.overrides[0].advisor == "advisor1@example.com"  # trimmed and lower-cased like client_dim's e-mails
    assert rules.exclusions[0].not_in.pair() == ("Northeast", "Retail")
    assert rules.secondary.parent_org is True
    overlay = rules.secondary.overlays[0]
    assert (overlay.id, overlay.overlay, overlay.owner_role) == ("foundations", "FOUNDATIONS", "Foundations Specialist")


def test_every_section_but_version_is_optional_and_empty_sections_may_be_left_blank():
    minimal = parse_rules("version: 1\n", "minimal.yaml")
    assert minimal.territories.rules == [] and minimal.segmentation.tiers == [] and minimal.overrides == []
    assert minimal.segmentation.precedence == "rules" and minimal.secondary.parent_org is False
    # every item commented out: YAML reads the key as null
    blank = parse_rules(
        "version: 1\noverrides:\nexclusions:\nterritories:\n  rules:\n  owner_roles:\nsecondary:\n  overlays:\n", "blank.yaml"
    )
    assert blank.overrides == [] and blank.exclusions == [] and blank.territories.rules == [] and blank.secondary.overlays == []


def test_rules_come_in_priority_order_with_ties_in_file_order():
    rules = parse_rules(
        rules_text(
            """
            territories:
              rules:
                - {id: late, priority: 50, assign: client}
                - {id: first, priority: 5, assign: client}
                - {id: tie-a, priority: 20, assign: client}
                - {id: tie-b, priority: 20, assign: client}
            """
        ),
        "order.yaml",
    )
    assert [(i, r.id) for i, r in rules.rules_in_order()] == [(1, "first"), (2, "tie-a"), (3, "tie-b"), (0, "late")]


def test_text_values_are_compared_as_written():
    rules = parse_rules(
        rules_text(
            "territories:\n  rules:\n    - {id: r, priority: 1, when: {x: {in: [1, 2.5, 5000000.0, b]}, y: {eq: 7}}, assign: client}\n"
        ),
        "t",
    )
    condition = rules.territories.rules[0].when
    assert condition["x"].in_ == ["1", "2.5", "5000000", "b"]
    assert condition["y"].eq == "7"
    assert (as_text(5000000.0), as_text(2.5), as_text(True), as_text("Retail")) == ("5000000", "2.5", "true", "Retail")


def test_the_committed_rules_are_the_seed_rule_only():
    rules = load_rules(COMMITTED)
    assert rules.segmentation.tiers == []
    assert [(r.id, r.priority, r.assign) for r in rules.territories.rules] == [("by-region-and-segment", 1000, "client")]
    assert set(rules.territories.rules[0].when) == {"region", "segment"}
    assert rules.overrides == [] and rules.exclusions == []
    assert rules.secondary.parent_org is False and rules.secondary.overlays == []
    assert rules.territories.owner_roles == {}


def test_the_worked_example_uses_every_feature():
    rules = load_rules(WORKED_EXAMPLE)
    operators = {op for _, r in rules.rules_in_order() for c in r.when.values() for op in c.operators()}
    operators |= {op for t in rules.segmentation.tiers for c in t.when.values() for op in c.operators()}
    assert operators == {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "regex", "is_null", "not_null"}
    assert rules.segmentation.tiers and rules.territories.owner_roles
    priorities = [r.priority for r in rules.territories.rules]
    assert len(priorities) != len(set(priorities))  # a tie, broken by file order
    assert any(r.assigns_client for r in rules.territories.rules) and any(not r.assigns_client for r in rules.territories.rules)
    assert {(o.assign is not None, o.advisor is not None) for o in rules.overrides} == {(True, True), (False, True)}
    assert rules.exclusions and rules.secondary.parent_org and rules.secondary.overlays


# --- the version hash --------------------------------------------------------------------------


def test_version_is_the_first_12_hex_of_the_sha256_of_the_file_bytes(tmp_path):
    data = COMMITTED.read_bytes()
    assert load_rules(COMMITTED).version == hashlib.sha256(data).hexdigest()[:12]
    assert load_rules(COMMITTED).version == load_rules(COMMITTED).version  # stable
    assert parse_rules(data.decode("utf-8"), "same text").version == load_rules(COMMITTED).version


def test_any_edit_changes_the_version_even_a_comment(tmp_path):
    original = COMMITTED.read_text()
    edited = tmp_path / "rules.yaml"
    edited.write_text(original + "# reviewed\n")
    assert load_rules(edited).version != load_rules(COMMITTED).version
    edited.write_text(original)
    assert load_rules(edited).version == load_rules(COMMITTED).version
    assert parse_rules(FULL, "a").version != parse_rules(FULL.replace("priority: 50", "priority: 51"), "a").version


# --- validation: every problem names its key path and the reason --------------------------------

RULE = "territories:\n  rules:\n    - {{id: r1, priority: 1, when: {when}, assign: client}}\n"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("segmentaton: {}\n", "segmentaton", "unknown key 'segmentaton' (did you mean 'segmentation'?)"),
        (
            "territories:\n  rule: []\n",
            "territories.rule",
            "unknown key 'rule' (did you mean 'rules'?) (expected: owner_roles, rules)",
        ),
        (
            RULE.format(when="{aum_usd: {gtee: 5}}"),
            "territories.rules[0].when.aum_usd.gtee",
            "unknown operator 'gtee' (did you mean 'gte'?)",
        ),
        (
            RULE.format(when="{aum_usd: {between: [1, 2]}}"),
            "territories.rules[0].when.aum_usd.between",
            "unknown operator 'between'",
        ),
        (
            RULE.format(when="{aum_usd: {gte: 5M}}"),
            "territories.rules[0].when.aum_usd.gte",
            "expected a number, got the text '5M'",
        ),
        (
            RULE.format(when="{aum_usd: {lt: true}}"),
            "territories.rules[0].when.aum_usd.lt",
            "expected a number, got the boolean true",
        ),
        (
            RULE.format(when="{region: {in: Northeast}}"),
            "territories.rules[0].when.region.in",
            "expected a list, got the text 'Northeast'",
        ),
        (RULE.format(when="{region: {eq: no}}"), "territories.rules[0].when.region.eq", "got the YAML boolean false"),
        (RULE.format(when="{region: {eq: [a]}}"), "territories.rules[0].when.region.eq", "expected text or a number, got a list"),
        (
            RULE.format(when="{region: {is_null: false}}"),
            "territories.rules[0].when.region.is_null",
            "must be true, got the boolean false",
        ),
        (RULE.format(when="{region: Northeast}"), "territories.rules[0].when.region", "expected a mapping of operator to value"),
        (RULE.format(when="{region: {}}"), "territories.rules[0].when.region", "no operator: give at least one of"),
        (
            RULE.format(when="{client_name: {regex: '(unclosed'}}"),
            "territories.rules[0].when.client_name.regex",
            "invalid regular expression '(unclosed'",
        ),
        (
            RULE.format(when="{aum_usd: {gte: 10, lt: 5}}"),
            "territories.rules[0].when.aum_usd.gte",
            "gte 10 is above lt 5: no number can match",
        ),
        (RULE.format(when="{aum_usd: {gt: 10, lte: 9.5}}"), "territories.rules[0].when.aum_usd.gt", "gt 10 is above lte 9.5"),
        (
            "territories:\n  rules:\n    - {id: r1, priority: high, assign: client}\n",
            "territories.rules[0].priority",
            "expected a whole number, got the text 'high'",
        ),
        (
            "territories:\n  rules:\n    - {id: r1, priority: 1.5, assign: client}\n",
            "territories.rules[0].priority",
            "expected a whole number, got the number 1.5",
        ),
        ("territories:\n  rules:\n    - {id: r1, assign: client}\n", "territories.rules[0].priority", "required key is missing"),
        ("territories:\n  rules:\n    - {id: r1, priority: 1}\n", "territories.rules[0].assign", "required key is missing"),
        (
            "territories:\n  rules:\n    - {id: r1, priority: 1, assign: clients}\n",
            "territories.rules[0].assign",
            "must be `client` (the client's own region and segment) or a mapping {region: ..., segment: ...}",
        ),
        (
            "territories:\n  rules:\n    - {id: r1, priority: 1, assign: [West, Retail]}\n",
            "territories.rules[0].assign",
            "must be `client`",
        ),
        (
            "territories:\n  rules:\n    - {id: r1, priority: 1, assign: {region: West}}\n",
            "territories.rules[0].assign.segment",
            "required key is missing",
        ),
        (
            "territories:\n  rules:\n    - {id: r1, priority: 1, assign: {region: West, segment: Retail, advisor: a@b.co}}\n",
            "territories.rules[0].assign.advisor",
            "unknown key 'advisor' (expected: region, segment)",
        ),
        (
            "territories:\n  rules:\n    - {id: fallback, priority: 1, assign: client}\n",
            "territories.rules[0].id",
            "id 'fallback' is reserved",
        ),
        (
            "territories:\n  rules:\n    - {id: 'by region', priority: 1, assign: client}\n",
            "territories.rules[0].id",
            "must start with a letter or digit and use only letters, digits",
        ),
        (
            "segmentation:\n  precedence: source_first\n",
            "segmentation.precedence",
            "must be 'rules' or 'source', got the text 'source_first'",
        ),
        (
            "segmentation:\n  tiers:\n    - {id: t, segment: 5}\n",
            "segmentation.tiers[0].segment",
            "expected text, got the number 5",
        ),
        ("territories:\n  owner_roles: {Retail: ''}\n", "territories.owner_roles.Retail", "must not be empty"),
        (
            "overrides:\n  - client_key: 'csv_drop:1'\n",
            "overrides[0]",
            "an override needs `assign`, `advisor` or both; it pins nothing",
        ),
        (
            "overrides:\n  - {client_key: 'csv_drop:1', advisor: not-an-email}\n",
            "overrides[0].advisor",
            "'not-an-email' is not a valid e-mail address",
        ),
        (
            "overrides:\n  - {client_key: 'csv_drop:1', assign: client}\n",
            "overrides[0].assign",
            "expected a mapping (key: value), got the text 'client'",
        ),
        ("exclusions:\n  - {client_key: 'csv_drop:1'}\n", "exclusions[0].not_in", "required key is missing"),
        ("secondary:\n  parent_org: yes please\n", "secondary.parent_org", "expected true or false, got the text 'yes please'"),
        (
            "secondary:\n  overlays:\n    - {id: o, overlay: foundations, owner_role: F}\n",
            "secondary.overlays[0].overlay",
            "overlay code 'foundations' must use only A-Z, 0-9 and '_'",
        ),
        (
            "secondary:\n  overlays:\n    - {id: o, overlay: NOR_INS, owner_role: F}\n",
            "secondary.overlays[0].overlay",
            "has the shape of a geographic territory id",
        ),
        (
            "secondary:\n  overlays:\n    - {id: o, overlay: FOUNDATIONS}\n",
            "secondary.overlays[0].owner_role",
            "required key is missing",
        ),
    ],
)
def test_each_problem_names_its_key_path_and_reason(body, key, reason):
    found_key, found_reason = only_problem(rules_text(body))
    assert found_key == key
    assert reason in found_reason


def test_the_key_path_counts_list_items_from_zero():
    text = rules_text(
        """
        territories:
          rules:
            - {id: a, priority: 1, assign: client}
            - {id: b, priority: 2, assign: client}
            - {id: c, priority: 3, when: {aum_usd: {gte: 10, lt: 5}}, assign: client}
        """
    )
    assert only_problem(text) == (
        "territories.rules[2].when.aum_usd.gte",
        "gte 10 is above lt 5: no number can match (swapped bounds?)",
    )


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (
            "segmentation:\n  tiers:\n    - {id: shared, segment: Retail}\nterritories:\n  rules:\n    - {id: shared, priority: 1, assign: client}\n",
            "territories.rules[0].id",
            "duplicate id 'shared' (already used at segmentation.tiers[0].id); tier, rule and overlay ids must be unique",
        ),
        (
            "territories:\n  rules:\n    - {id: r, priority: 1, assign: client}\n    - {id: r, priority: 2, assign: client}\n",
            "territories.rules[1].id",
            "duplicate id 'r' (already used at territories.rules[0].id); tier, rule and overlay ids must be unique",
        ),
        (
            "territories:\n  rules:\n    - {id: r, priority: 1, assign: client}\nsecondary:\n  overlays:\n    - {id: r, overlay: SPECIAL, owner_role: S}\n",
            "secondary.overlays[0].id",
            "duplicate id 'r' (already used at territories.rules[0].id); tier, rule and overlay ids must be unique",
        ),
        (
            "secondary:\n  overlays:\n    - {id: a, overlay: SPECIAL, owner_role: S}\n    - {id: b, overlay: SPECIAL, owner_role: S}\n",
            "secondary.overlays[1].overlay",
            "duplicate overlay code 'SPECIAL' (already used at secondary.overlays[0].overlay)",
        ),
        (
            "overrides:\n  - {client_key: 'csv_drop:1', advisor: a@example.com}\n  - {client_key: 'csv_drop:1', advisor: b@example.com}\n",
            "overrides[1].client_key",
            "client 'csv_drop:1' is already overridden at overrides[0]; merge the two",
        ),
        (
            "overrides:\n  - {client_key: 'csv_drop:1', assign: {region: Northeast, segment: Retail}}\n"
            "exclusions:\n  - {client_key: 'csv_drop:2', not_in: {region: Northeast, segment: Retail}}\n"
            "  - {client_key: 'csv_drop:1', not_in: {region: Northeast, segment: Retail}}\n",
            "overrides[0].assign",
            "pins client 'csv_drop:1' to (Northeast, Retail), which exclusions[1] forbids for that client; drop one of them",
        ),
        (
            "segmentation:\n  tiers: []\n  tiers:\n    - {id: t, segment: Retail}\n",
            "segmentation.tiers",
            "written twice in one mapping (lines 3 and 4); YAML would silently keep only the last",
        ),
    ],
)
def test_problems_across_entries(body, key, reason):
    assert only_problem(rules_text(body)) == (key, reason)


def test_an_override_and_an_exclusion_for_different_territories_agree():
    rules = parse_rules(
        rules_text(
            """
            overrides:
              - {client_key: 'csv_drop:1', assign: {region: West, segment: Retail}}
            exclusions:
              - {client_key: 'csv_drop:1', not_in: {region: Northeast, segment: Retail}}
            """
        ),
        "ok.yaml",
    )
    assert len(rules.overrides) == 1 and len(rules.exclusions) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty; it needs at least `version: 1`"),
        ("- version: 1\n", "expected a mapping of sections (version, segmentation, ...), got a list"),
        ("version: 1\nterritories: {rules: [\n", "not valid YAML at line 3, column 1"),
    ],
)
def test_document_level_problems(text, reason):
    key, found = only_problem(text)
    assert key == "(document)"
    assert found.startswith(reason)


def test_version_is_required_and_must_be_1():
    assert only_problem("territories: {}\n") == ("version", "required key is missing")
    assert only_problem("version: 2\n") == ("version", "must be 1, got the number 2")


def test_every_problem_is_reported_at_once_one_line_each():
    text = rules_text(
        """
        segmentation:
          precedence: sometimes
        territories:
          rules:
            - {id: a, priority: 1, when: {aum_usd: {gte: lots}}, assign: client}
            - {id: b, priority: 2, assign: nowhere}
        overrides:
          - client_key: 'csv_drop:1'
        """
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "data/rules/candidate.yaml")
    assert [key for key, _ in caught.value.problems] == [
        "segmentation.precedence",
        "territories.rules[0].when.aum_usd.gte",
        "territories.rules[1].assign",
        "overrides[0]",
    ]
    lines = str(caught.value).splitlines()
    assert lines[0] == "data/rules/candidate.yaml: the rules file is invalid (4 problems):"
    assert lines[1:] == [f"  {key}: {reason}" for key, reason in caught.value.problems]


def test_load_rules_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RulesError, match="nowhere.yaml: the rules file is invalid") as caught:
        load_rules(missing)
    assert caught.value.problems == [("(document)", "the rules file does not exist")]

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nterritories:\n  rules:\n    - {id: r, priority: 1, assign: {region: West}}\n")
    with pytest.raises(RulesError) as caught:
        load_rules(broken)
    assert caught.value.source == str(broken)
    assert str(broken) in str(caught.value)
    assert caught.value.problems == [("territories.rules[0].assign.segment", "required key is missing")]

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("version: 1\n# région\n".encode("latin-1"))
    with pytest.raises(RulesError) as caught:
        load_rules(latin1)
    assert caught.value.problems == [("(document)", "not UTF-8: byte 0xe9 at offset 14 (line 2)")]


def test_yaml_aliases_are_refused_before_anything_walks_them():
    """The probe's 723-byte billion laughs hung territory_rules (the duplicate-key walk followed every alias)."""
    laughs = "version: 1\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for level in "bcdefghij":
        previous = chr(ord(level) - 1)
        laughs += f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]\n"
    with pytest.raises(RulesError, match=r"anchors and aliases .* are not allowed in a rules file \(line 2\)"):
        parse_rules(laughs, "laughs.yaml")


def test_a_python_object_tag_is_refused_in_words():
    with pytest.raises(
        RulesError, match=r"not valid YAML at line 2, column \d+: could not determine a constructor for the tag .*python/object"
    ):
        parse_rules("version: 1\nsegmentation: !!python/object:os.system {}\n", "tag.yaml")


def test_a_rules_file_over_the_size_limit_is_refused_naming_its_size(tmp_path):
    from crm_territory.logic.rules.loader import MAX_RULES_BYTES

    path = tmp_path / "territory_rules.yaml"
    path.write_text("version: 1\n" + "#" * MAX_RULES_BYTES + "\n")
    with pytest.raises(RulesError, match=r"the rules file is [\d,]+ bytes; a rules file may have at most 1,000,000"):
        load_rules(path)
