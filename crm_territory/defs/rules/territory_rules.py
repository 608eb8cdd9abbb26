"""The rules in force: ``rules/territory_rules.yaml`` validated and analysed before anything is placed."""

import dagster as dg
import pandas as pd

from crm_territory.logic.rules.table import rules_table
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles, check_rules
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import DAILY_PULL
from crm_territory.wiring.metadata import markdown_table, table_metadata


@table_asset(
    "territory_rules",
    automation_condition=DAILY_PULL,
    check_specs=[
        dg.AssetCheckSpec(
            "territory_rules_static_analysis",
            asset="territory_rules",
            description="Rules that can never fire, overlapping rules at one priority, territories no rule reaches. WARN.",
        )
    ],
)
def territory_rules(context: dg.AssetExecutionContext, rules_files: RulesFiles, reference_files: ReferenceFiles):
    """The rules in force (``rules/territory_rules.yaml``), validated before anything is placed: a malformed or contradictory file fails here, naming every
    key and reason, and the territories and assignments stay as they were. Static analysis errors
    (unknown columns, regions, segments) fail too; its warnings are this asset's WARN check.
    """
    rules = rules_files.load_active()
    findings = check_rules(rules, reference_files.load())
    table = rules_table(rules)
    context.log.info(f"territory rules {rules.version}: {len(table)} rules, {len(findings)} warning(s)")
    yield dg.Output(
        table,
        metadata=table_metadata(table, rules_version=rules.version, path=dg.MetadataValue.path(str(rules_files.active_path))),
    )
    warnings = pd.DataFrame([(f.key, f.message) for f in findings], columns=["key", "warning"])
    yield dg.AssetCheckResult(
        check_name="territory_rules_static_analysis",
        passed=warnings.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rule_warnings": len(warnings),
            **({"findings": dg.MetadataValue.md(markdown_table(warnings, limit=100))} if len(warnings) else {}),
        },
    )
