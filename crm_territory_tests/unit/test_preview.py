"""The preview diff: exactly the clients whose territory or advisor a candidate would change, and the balance."""

import os

import pandas as pd
import pytest

from crm_territory.logic.placement.pipeline import build_star
from crm_territory.logic.rules.loader import parse_rules
from crm_territory.logic.rules.model import RulesError
from crm_territory.logic.rules.preview import evaluate_candidate, preview
from crm_territory.logic.rules.time_limit import ChildFailed, TimeLimitExceeded, run_with_time_limit
from crm_territory.resources.rules_files import check_rules
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


# --- the candidate under a time limit ------------------------------------------------------------

# A candidate that is slow but legal: each rule's regular expression stays under the engine's 2 s
# budget on this client's name ((a|aa)+$ backtracks ~1.6^28 steps on it: about 0.1 s here), and
# 500 of them take about a minute. Nothing in it is refused; only a time limit on the whole stops it.
SLOW_NAME = "a" * 28 + "!"
SLOW_CANDIDATE = SEED_RULE + "".join(
    f"""
    - id: slow-{i}
      priority: {i + 1}
      when: {{client_name: {{regex: "(a|aa)+$"}}}}
      assign: {{region: Midwest, segment: Retail}}
"""
    for i in range(500)
)


def _double(x: int) -> int:
    return 2 * x


def _spin(pid_file: str) -> None:
    with open(pid_file, "w") as handle:
        handle.write(str(os.getpid()))
    while True:
        pass


def _refuse() -> None:
    raise RulesError("rules.yaml", [("territories", "refused")])  # an exception that does not pickle by its args


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_function_run_with_a_time_limit_gives_its_result_or_its_error():
    assert run_with_time_limit(_double, (21,), 60) == 42
    with pytest.raises(ChildFailed, match="RulesError: rules.yaml: the rules file is invalid") as failed:
        run_with_time_limit(_refuse, (), 60)
    assert "_refuse" in failed.value.details  # the child's traceback


def test_a_function_over_its_time_limit_is_stopped_not_only_abandoned(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(TimeLimitExceeded) as exceeded:
        run_with_time_limit(_spin, (str(pid_file),), 1)
    assert exceeded.value.seconds == 1
    assert not _alive(exceeded.value.pid)  # killed and reaped, not left spinning in the background
    # the spinning function may not even have started within 1 s on a busy machine; if it did, it is gone
    if pid_file.exists():
        assert int(pid_file.read_text()) == exceeded.value.pid


def _book(reference):
    clients = pd.concat([CLIENTS, CLIENTS.iloc[[0]].assign(client_key="csv_drop:5", client_name=SLOW_NAME)], ignore_index=True)
    current = build_star(clients, parse_rules(SEED_RULE, "active.yaml"), reference, issued_at=utc("2026-01-01"))
    return clients, current


def test_a_slow_candidate_is_stopped_at_the_time_limit(tmp_path, reference):
    clients, current = _book(reference)
    path = tmp_path / "territory_rules.yaml"
    path.write_text(SLOW_CANDIDATE)
    args = (path, check_rules, reference, clients, current.territory_dim, current.assignments.fact, None)
    with pytest.raises(TimeLimitExceeded) as exceeded:
        run_with_time_limit(evaluate_candidate, args, 1)
    assert not _alive(exceeded.value.pid)


def test_a_candidate_the_engine_refuses_is_reported_as_invalid_not_raised(tmp_path, reference):
    clients, current = _book(reference)
    clients.loc[clients["client_key"] == "csv_drop:5", "client_name"] = "a" * 40 + "!"  # over the regex budget
    path = tmp_path / "territory_rules.yaml"
    path.write_text(SLOW_CANDIDATE.split("    - id: slow-1\n")[0])  # one slow rule
    result = evaluate_candidate(path, check_rules, reference, clients, current.territory_dim, current.assignments.fact, None)
    assert result.status == "invalid" and result.preview is None
    assert "territories.rules[1].when.client_name.regex" in (result.problem or "")
    assert "backtracks catastrophically" in (result.problem or "")


def test_no_candidate_file_is_no_preview(tmp_path, reference):
    clients, current = _book(reference)
    result = evaluate_candidate(
        tmp_path / "absent.yaml", check_rules, reference, clients, current.territory_dim, current.assignments.fact, None
    )
    assert result.status == "none"
