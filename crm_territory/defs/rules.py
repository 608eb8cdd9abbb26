"""The territory rules in Dagster: the rules in force, the preview of a candidate, and its explicit activation."""

import dagster as dg
import pandas as pd

from crm_territory.defs.ingest import OWNERS
from crm_territory.defs.metadata import markdown_table, table_metadata
from crm_territory.logic.preview import preview
from crm_territory.logic.rules import RulesError
from crm_territory.logic.rules_table import rules_table
from crm_territory.logic.star import build_star
from crm_territory.resources.reference import ReferenceFiles
from crm_territory.resources.rules import RulesFiles, check_rules
from crm_territory.resources.storage import TableStore
from crm_territory.schemas import AssignmentsPreview, empty_frame


@dg.asset(
    group_name="core",
    kinds={"yaml"},
    owners=OWNERS,
    metadata={"layer": "core"},
    check_specs=[
        dg.AssetCheckSpec(
            "territory_rules_static_analysis",
            asset="territory_rules",
            description="Rules that can never fire, overlapping rules at one priority, territories no rule reaches. WARN.",
        )
    ],
)
def territory_rules(context: dg.AssetExecutionContext, rules_files: RulesFiles, reference_files: ReferenceFiles):
    """The rules in force (``rules/territory_rules.yaml``). Grain: one row per rule (tier, territory rule, override, ...).

    Validated before anything is placed: a malformed or contradictory file fails here, naming every
    key and reason, and the territories and assignments stay as they were. Static analysis errors
    (unknown columns, regions, segments) fail too; its warnings are this asset's WARN check.
    """
    rules = rules_files.load_active()
    findings = check_rules(rules, reference_files.load())
    table = rules_table(rules)
    context.log.info(f"territory rules {rules.version}: {len(table)} rules, {len(findings)} warning(s)")
    yield dg.Output(table, metadata=table_metadata(table, rules_version=rules.version, path=dg.MetadataValue.path(str(rules_files.active_path))))
    warnings = pd.DataFrame([(f.key, f.message) for f in findings], columns=["key", "warning"])
    yield dg.AssetCheckResult(
        check_name="territory_rules_static_analysis",
        passed=warnings.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "warnings": len(warnings),
            **({"findings": dg.MetadataValue.md(markdown_table(warnings, limit=100))} if len(warnings) else {}),
        },
    )


@dg.asset(group_name="preview", kinds={"pandas"}, owners=OWNERS, metadata={"layer": "core"})
def assignments_preview(
    context: dg.AssetExecutionContext,
    client_dim: pd.DataFrame,
    territory_dim: pd.DataFrame,
    advisor_dim: pd.DataFrame,
    assignments_fact: pd.DataFrame,
    rules_files: RulesFiles,
    reference_files: ReferenceFiles,
    table_store: TableStore,
) -> dg.Output[pd.DataFrame]:
    """What activating ``rules/candidate/territory_rules.yaml`` would change. Grain: one row per client whose territory or advisor would change.

    Evaluates the candidate on the current clients, territories and advisors and stores nothing else:
    no territory id is issued, no assignment moves. Its metadata shows the counts per territory and
    per advisor and the load balance before and after. To apply it, run ``activate_rules_job`` with
    the candidate version shown here (``python -m crm_territory.cli activate-rules --version ...``).
    """
    try:
        candidate = rules_files.load_candidate()
    except RulesError as exc:  # a broken candidate is the author's problem, not the pipeline's: report, don't fail
        context.log.error(f"The candidate rules cannot be previewed: {exc}")
        empty = empty_frame(AssignmentsPreview)
        return dg.Output(empty, metadata=table_metadata(empty, candidate=f"invalid: {exc}"))
    if candidate is None:
        context.log.info(f"No candidate rules at {rules_files.candidate_path}: nothing to preview")
        empty = empty_frame(AssignmentsPreview)
        return dg.Output(empty, metadata=table_metadata(empty, candidate=f"none: put a rules file at {rules_files.candidate_path}"))
    reference = reference_files.load()
    try:
        findings = check_rules(candidate, reference)
    except RulesError as exc:
        context.log.error(f"The candidate rules cannot be previewed: {exc}")
        empty = empty_frame(AssignmentsPreview)
        return dg.Output(empty, metadata=table_metadata(empty, candidate=f"invalid: {exc}"))
    # advisors are re-translated onto the candidate's territories (a new territory gets its advisors too)
    star = build_star(
        client_dim, candidate, reference,
        previous_territories=territory_dim, roster=table_store.read_previous("crm_api_advisors"),
    )  # fmt: skip
    result = preview(assignments_fact, star, star.advisor_dim, territory_dim)
    secondary = lambda fact: int(((fact["assignment_type"] == "SECONDARY") & fact["is_current"]).sum())  # noqa: E731
    moved = int(result.changes["change"].str.contains("territory").sum())
    context.log.info(f"candidate {candidate.version}: {len(result.changes):,} clients would change ({moved:,} of territory)")
    return dg.Output(
        result.changes,
        metadata=table_metadata(
            result.changes,
            candidate_version=candidate.version,
            active_version=rules_files.load_active().version,
            clients_changing_territory=moved,
            clients_changing_advisor=int(result.changes["change"].str.contains("advisor").sum()),
            secondary_rows_before=secondary(assignments_fact),
            secondary_rows_after=secondary(star.assignments.fact),
            per_territory=dg.MetadataValue.md(markdown_table(result.territories[result.territories["change"] != 0], limit=200)),
            per_advisor=dg.MetadataValue.md(markdown_table(result.advisors, limit=100)),
            load_balance=dg.MetadataValue.md(markdown_table(result.balance)),
            new_territories=dg.MetadataValue.md(markdown_table(result.new_territories, limit=50)),
            analysis_warnings=len(findings),
            activate=f"python -m crm_territory.cli activate-rules --version {candidate.version}",
        ),
    )


class ActivateRulesConfig(dg.Config):
    version: str
    """The candidate version shown by assignments_preview: activation refuses any other."""


@dg.op(description="Make the previewed candidate rules the active rules (the previous file is archived).")
def activate_candidate_rules(context: dg.OpExecutionContext, config: ActivateRulesConfig, rules_files: RulesFiles, reference_files: ReferenceFiles) -> None:
    # only what someone could have looked at: the latest preview in this instance must be of this version
    last = context.instance.get_latest_materialization_event(dg.AssetKey("assignments_preview"))
    shown = last.asset_materialization.metadata if last and last.asset_materialization else {}
    previewed = shown.get("candidate_version")
    if previewed is None or previewed.value != config.version:
        raise dg.Failure(
            f"Rules {config.version} have not been previewed (latest preview: "
            f"{previewed.value if previewed else 'none'}). Materialize assignments_preview, review it, then activate the version it shows."
        )
    previous, archive = rules_files.activate(config.version, reference_files.load(), shown["active_version"].value)
    context.log.info(f"rules {config.version} are now active (was {previous}, archived at {archive}); materialize the star schema to apply them")


@dg.job(description="Activate the candidate rules previewed by assignments_preview; run config: ops.activate_candidate_rules.config.version.")
def activate_rules_job():
    activate_candidate_rules()
