"""Static analysis of a rules file against the clients' columns and the reference data, before anything runs.

Why: a rule that names a column the clients do not have, or a region that does not exist, would
silently match nobody; a rule hidden behind an earlier one, two rules fighting at one priority, or a
territory nothing can reach are mistakes a reviewer should see before the rules move a single
client. The loader (``crm_territory.logic.rules.model``) checks the file on its own; this module checks it
against the world:

* errors: a ``when`` on an unknown column; a region or segment unknown to the reference data in a
  rule's ``assign``, an exclusion's ``not_in``, an override's ``assign``, a tier's ``segment`` or an
  ``owner_roles`` key;
* warnings: a tier, rule or overlay that can never fire (criteria that contradict each other, such as
  ``gte: 5, lt: 5`` or ``eq: X`` with ``not_in: [X]``; ``eq``/``in`` on region or segment naming only
  unknown values; or shadowed by an earlier rule that matches every client it would match); two
  rules at the same priority that are not provably disjoint (the tie goes to file order, which a
  reader may not expect); a (region, segment) territory that no territory rule can reach.

"Provably disjoint" means some column on which the two rules' conditions cannot both hold: eq/in
value sets that do not intersect, numeric ranges that do not meet, a null check against a value test.
The analysis is sound but not complete: it warns only about what it can prove.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from crm_territory.logic.rules.model import Condition, Rules, RulesError, Target, TerritoryRule, as_text

Severity = Literal["error", "warning"]
# ``assign: client`` only places clients whose own region and segment are known: an implicit condition.
_KNOWN = Condition(not_null=True)


@dataclass(frozen=True)
class Finding:
    severity: Severity
    key: str  # key path in the rules file, e.g. territories.rules[2].when.aum_usd
    message: str


def analyse_rules(
    rules: Rules, *, columns: set[str], regions: list[str], segments: list[str], numeric_columns: set[str] | None = None
) -> list[Finding]:
    """Every finding about ``rules``, errors and warnings, in file order within each kind of check.

    ``numeric_columns``: the columns ranges (gt, gte, lt, lte) may compare; a range on any other known
    column is an error (it would fail on every run). None skips that check.
    """
    findings: list[Finding] = []
    findings += _unknown_columns(rules, columns)
    if numeric_columns is not None:
        findings += _ranges_on_text(rules, columns, numeric_columns)
    findings += _unknown_targets(rules, set(regions), set(segments))
    never = _never_firing(rules, set(regions), set(segments))
    findings += [finding for finding, _ in never]
    silent = {key for _, key in never}
    findings += _overlaps(rules, silent)
    findings += _unreachable(rules, regions, segments, silent)
    return findings


def raise_on_errors(findings: list[Finding], source: str) -> None:
    """Raise ``RulesError`` listing every error finding (warnings do not stop a run)."""
    errors = [(f.key, f.message) for f in findings if f.severity == "error"]
    if errors:
        raise RulesError(source, errors)


# --- what the file refers to -------------------------------------------------------------------


def _ranges_on_text(rules: Rules, columns: set[str], numeric: set[str]) -> list[Finding]:
    findings = []
    for prefix, when in _criteria(rules):
        for column, condition in when.items():
            if column not in columns or column in numeric:
                continue
            for op in ("gt", "gte", "lt", "lte"):
                if condition.get(op) is not None:
                    findings.append(
                        Finding(
                            "error",
                            f"{prefix}.when.{column}.{op}",
                            f"'{op}' compares numbers, but '{column}' is text (numeric columns: {', '.join(sorted(numeric)) or 'none'})",
                        )
                    )
    return findings


def _criteria(rules: Rules) -> list[tuple[str, dict[str, Condition]]]:
    """(key prefix, when) of every tier, territory rule and overlay."""
    return (
        [(f"segmentation.tiers[{i}]", t.when) for i, t in enumerate(rules.segmentation.tiers)]
        + [(f"territories.rules[{i}]", r.when) for i, r in enumerate(rules.territories.rules)]
        + [(f"secondary.overlays[{i}]", o.when) for i, o in enumerate(rules.secondary.overlays)]
    )


def _unknown_columns(rules: Rules, columns: set[str]) -> list[Finding]:
    known = ", ".join(sorted(columns))
    return [
        Finding(
            "error", f"{prefix}.when.{column}", f"unknown column {column!r}: the clients have no such column (known: {known})"
        )
        for prefix, when in _criteria(rules)
        for column in when
        if column not in columns
    ]


def _unknown_targets(rules: Rules, regions: set[str], segments: set[str]) -> list[Finding]:
    named: list[tuple[str, str, str]] = []  # (key, kind, value)
    for i, tier in enumerate(rules.segmentation.tiers):
        named.append((f"segmentation.tiers[{i}].segment", "segment", tier.segment))
    for segment in rules.territories.owner_roles:
        named.append((f"territories.owner_roles.{segment}", "segment", segment))
    targets = (
        [
            (f"territories.rules[{i}].assign", r.assign)
            for i, r in enumerate(rules.territories.rules)
            if isinstance(r.assign, Target)
        ]
        + [(f"overrides[{i}].assign", o.assign) for i, o in enumerate(rules.overrides) if o.assign is not None]
        + [(f"exclusions[{i}].not_in", e.not_in) for i, e in enumerate(rules.exclusions)]
    )
    for key, target in targets:
        named += [(f"{key}.region", "region", target.region), (f"{key}.segment", "segment", target.segment)]
    known = {"region": regions, "segment": segments}
    return [
        Finding("error", key, f"unknown {kind} {value!r} (known {kind}s: {', '.join(sorted(known[kind]))})")
        for key, kind, value in named
        if value not in known[kind]
    ]


# --- rules that can never fire -----------------------------------------------------------------


def _effective(rule: TerritoryRule) -> dict[str, list[Condition]]:
    """A rule's conditions per column, with the implicit ones (``assign: client`` needs a known territory)."""
    conditions = {column: [condition] for column, condition in rule.when.items()}
    if rule.assigns_client:
        for column in ("region", "segment"):
            conditions.setdefault(column, []).append(_KNOWN)
    return conditions


def _never_firing(rules: Rules, regions: set[str], segments: set[str]) -> list[tuple[Finding, str]]:
    """(warning, key of the silent tier/rule/overlay)."""
    out: list[tuple[Finding, str]] = []
    reference = {"region": regions, "segment": segments}
    for prefix, when in _criteria(rules):
        for column, condition in when.items():
            reason = empty_reason([condition])
            if reason is None and column in reference:
                reason = _only_unknown_values(condition, column, reference[column])
            if reason is not None:
                out.append((Finding("warning", f"{prefix}.when.{column}", f"can never fire: {reason}"), prefix))
                break

    silent = {key for _, key in out}
    tiers = [
        (f"segmentation.tiers[{i}]", t.id, {c: [k] for c, k in t.when.items()}, False)
        for i, t in enumerate(rules.segmentation.tiers)
    ]
    ordered = [(f"territories.rules[{i}]", r.id, _effective(r), _skippable(r, rules)) for i, r in rules.rules_in_order()]
    for entries, what in ((tiers, "tier"), (ordered, "rule")):
        for j, (key, _rule_id, conditions, _) in enumerate(entries):
            if key in silent:
                continue
            for earlier_key, earlier_id, earlier, skippable in entries[:j]:
                if earlier_key not in silent and not skippable and _covers(earlier, conditions):
                    message = (
                        f"can never fire: the earlier {what} {earlier_id!r} ({earlier_key}) matches every client this one matches"
                    )
                    out.append((Finding("warning", key, message), key))
                    break
    return out


def _skippable(rule: TerritoryRule, rules: Rules) -> bool:
    """Whether an exclusion can make ``rule`` pass a client on to later rules."""
    if not isinstance(rule.assign, Target):  # assign: client
        return bool(rules.exclusions)
    target = rule.assign
    return any(e.not_in.pair() == target.pair() for e in rules.exclusions)


def _only_unknown_values(condition: Condition, column: str, known: set[str]) -> str | None:
    wanted = ([condition.eq] if condition.eq is not None else []) + list(condition.in_ or [])
    if wanted and not set(wanted) & known:
        return f"{column} is never {' or '.join(repr(v) for v in wanted)} (not a known {column})"
    return None


def empty_reason(conditions: list[Condition]) -> str | None:
    """Why no value can satisfy all ``conditions`` on one column together, or None when one can.

    Used for a single condition (a rule that can never fire) and for the conditions of two rules on
    one column (the rules are disjoint).
    """
    is_null = any(c.is_null for c in conditions)
    eqs = [c.eq for c in conditions if c.eq is not None]
    ins = [c.in_ for c in conditions if c.in_ is not None]
    regexes = [c.regex for c in conditions if c.regex is not None]
    excluded = {c.ne for c in conditions if c.ne is not None} | {v for c in conditions for v in (c.not_in or [])}
    lower = max((b for c in conditions if (b := c.lower_bound())), key=lambda b: (b.value, not b.inclusive), default=None)
    upper = min((b for c in conditions if (b := c.upper_bound())), key=lambda b: (b.value, b.inclusive), default=None)

    if is_null:
        if any(c.not_null for c in conditions):
            return "is_null and not_null together"
        value_tests = ("eq", "in", "regex", "gt", "gte", "lt", "lte")
        clashing = [op for op in value_tests if any(c.get(op) is not None for c in conditions)]
        if clashing:
            return f"is_null together with {', '.join(clashing)}, which a missing value never satisfies"
        return None
    if lower is not None and upper is not None:
        if lower.value > upper.value or (lower.value == upper.value and not (lower.inclusive and upper.inclusive)):
            return f"{lower.operator} {as_text(lower.value)} and {upper.operator} {as_text(upper.value)} leave no number"
    allowed: set[str] | None = None
    for values in [[v] for v in eqs] + ins:
        allowed = set(values) if allowed is None else allowed & set(values)
    if allowed is None:
        return None
    if not allowed:
        if ins and not all(ins):
            return "in: [] matches nothing"
        return f"eq/in allow no common value ({_listing(eqs, ins)})"
    remaining = allowed - excluded
    if not remaining:
        return f"every value eq/in allow ({', '.join(sorted(map(repr, allowed)))}) is excluded by ne/not_in"
    for pattern in regexes:
        remaining = {v for v in remaining if re.fullmatch(pattern, v)}
        if not remaining:
            return f"no value eq/in allow matches regex {pattern!r}"
    if lower is not None or upper is not None:
        remaining = {v for v in remaining if _in_range(v, lower, upper)}
        if not remaining:
            return "no value eq/in allow lies in the numeric range"
    return None


def _listing(eqs: list[str], ins: list[list[str]]) -> str:
    parts = [f"eq {v!r}" for v in eqs] + [f"in {sorted(values)}" for values in ins]
    return "; ".join(parts)


def _in_range(text: str, lower, upper) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    if lower is not None and (value < lower.value or (value == lower.value and not lower.inclusive)):
        return False
    if upper is not None and (value > upper.value or (value == upper.value and not upper.inclusive)):
        return False
    return True


def _covers(earlier: dict[str, list[Condition]], later: dict[str, list[Condition]]) -> bool:
    """True when every client matching ``later`` also matches ``earlier`` (as far as can be proved)."""
    return all(_implied(later.get(column, []), condition) for column, conditions in earlier.items() for condition in conditions)


def _implied(given: list[Condition], condition: Condition) -> bool:
    """Whether ``given`` (all on one column) guarantees ``condition``."""
    if condition in given:
        return True
    if condition == _KNOWN:  # not_null alone: implied by any test a missing value fails
        positive = ("eq", "in", "regex", "gt", "gte", "lt", "lte", "not_null")
        return any(c.get(op) is not None for c in given for op in positive)
    wanted = _value_set(condition)
    if wanted is not None and set(condition.operators()) <= {"eq", "in"}:  # implied by a smaller value set
        return any(offered is not None and offered <= wanted for offered in map(_value_set, given))
    return False


def _value_set(condition: Condition) -> set[str] | None:
    """The values eq/in allow (None when the condition has neither)."""
    sets = ([{condition.eq}] if condition.eq is not None else []) + ([set(condition.in_)] if condition.in_ is not None else [])
    return set.intersection(*sets) if sets else None


# --- overlaps and reach ------------------------------------------------------------------------


def disjoint(a: dict[str, list[Condition]], b: dict[str, list[Condition]]) -> bool:
    """True when no client can match both criteria: some column's conditions cannot hold together."""
    return any(empty_reason(a[column] + b[column]) is not None for column in a.keys() & b.keys())


def _overlaps(rules: Rules, silent: set[str]) -> list[Finding]:
    findings = []
    ordered = [(i, r) for i, r in rules.rules_in_order() if f"territories.rules[{i}]" not in silent]
    for j, (i, rule) in enumerate(ordered):
        for k, earlier in ordered[:j]:
            if earlier.priority == rule.priority and not disjoint(_effective(earlier), _effective(rule)):
                findings.append(
                    Finding(
                        "warning",
                        f"territories.rules[{i}]",
                        f"overlaps rule {earlier.id!r} (territories.rules[{k}]) at the same priority {rule.priority}: "
                        f"a client matching both goes to {earlier.id!r} by file order; give them different priorities "
                        "or make their criteria disjoint",
                    )
                )
    return findings


def _unreachable(rules: Rules, regions: list[str], segments: list[str], silent: set[str]) -> list[Finding]:
    reached: set[tuple[str, str]] = set()
    for i, rule in enumerate(rules.territories.rules):
        if f"territories.rules[{i}]" in silent:
            continue
        if isinstance(rule.assign, Target):  # not assign: client
            reached.add(rule.assign.pair())
            continue
        conditions = _effective(rule)
        own_regions = [r for r in regions if all(_allows(c, r) for c in conditions.get("region", []))]
        own_segments = [s for s in segments if all(_allows(c, s) for c in conditions.get("segment", []))]
        reached |= {(r, s) for r in own_regions for s in own_segments}
    pinned = {o.assign.pair() for o in rules.overrides if o.assign is not None}
    findings = []
    for region in regions:
        for segment in segments:
            if (region, segment) not in reached:
                note = "; only overrides place clients there" if (region, segment) in pinned else ""
                findings.append(
                    Finding("warning", "territories.rules", f"no rule can reach territory ({region}, {segment}){note}")
                )
    return findings


def _allows(condition: Condition, value: str) -> bool:
    """Whether a present (non-missing) text value satisfies ``condition``."""
    if condition.is_null:
        return False
    if condition.eq is not None and value != condition.eq:
        return False
    if condition.ne is not None and value == condition.ne:
        return False
    if condition.in_ is not None and value not in condition.in_:
        return False
    if condition.not_in is not None and value in condition.not_in:
        return False
    if condition.regex is not None and not re.fullmatch(condition.regex, value):
        return False
    lower, upper = condition.lower_bound(), condition.upper_bound()
    if (lower is not None or upper is not None) and not _in_range(value, lower, upper):
        return False
    return True
