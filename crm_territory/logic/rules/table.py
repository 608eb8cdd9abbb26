"""The rules file as a table: one row per rule, so the rules in force are visible (and queryable) next to the data."""

from __future__ import annotations

import json

import pandas as pd

from crm_territory.logic.rules.model import Rules
from crm_territory.schemas import TerritoryRules, conform


def _criteria(when) -> str | None:
    if not when:
        return None
    return json.dumps(
        {column: condition.model_dump(exclude_none=True, by_alias=True) for column, condition in when.items()}, sort_keys=True
    )


def _target(target) -> str | None:
    if target is None:
        return None
    if isinstance(target, str):
        return target
    return f"{target.region} x {target.segment}"


def rules_table(rules: Rules) -> pd.DataFrame:
    rows = []
    for order, tier in enumerate(rules.segmentation.tiers):
        rows.append(
            {
                "kind": "segmentation tier",
                "rule_id": tier.id,
                "priority": order,
                "criteria": _criteria(tier.when),
                "target": tier.segment,
            }
        )
    for _, rule in rules.rules_in_order():
        rows.append(
            {
                "kind": "territory rule",
                "rule_id": rule.id,
                "priority": rule.priority,
                "criteria": _criteria(rule.when),
                "target": _target(rule.assign),
            }
        )
    for override in rules.overrides:
        target = " / ".join(p for p in [_target(override.assign), override.advisor and f"advisor {override.advisor}"] if p)
        rows.append(
            {
                "kind": "override",
                "rule_id": f"override:{override.client_key}",
                "priority": None,
                "criteria": None,
                "target": target,
            }
        )
    for exclusion in rules.exclusions:
        rows.append(
            {
                "kind": "exclusion",
                "rule_id": f"exclusion:{exclusion.client_key}:{_target(exclusion.not_in)}",
                "priority": None,
                "criteria": None,
                "target": f"never {_target(exclusion.not_in)}",
            }
        )
    if rules.secondary.parent_org:
        rows.append(
            {
                "kind": "secondary",
                "rule_id": "parent_org",
                "priority": None,
                "criteria": None,
                "target": "the parent organisation's territory",
            }
        )
    for overlay in rules.secondary.overlays:
        rows.append(
            {
                "kind": "overlay",
                "rule_id": overlay.id,
                "priority": None,
                "criteria": _criteria(overlay.when),
                "target": overlay.overlay,
            }
        )
    frame = pd.DataFrame(rows, columns=["kind", "rule_id", "priority", "criteria", "target"])
    frame["rules_version"] = rules.version
    return conform(frame, TerritoryRules)
