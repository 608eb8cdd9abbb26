"""The preview of a candidate rules file: what would move, per client, territory and advisor; nothing moves."""

import dagster as dg
import pandas as pd

from crm_territory.logic.placement.pipeline import build_star
from crm_territory.logic.rules.model import RulesError
from crm_territory.logic.rules.preview import preview
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles, check_rules
from crm_territory.schemas import AssignmentsPreview, empty_frame
from crm_territory.storage.table_store import missing_ok_input
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.metadata import markdown_table, table_metadata


def _current_secondary_rows(fact: pd.DataFrame) -> int:
    return int(((fact["assignment_type"] == "SECONDARY") & fact["is_current"]).sum())


@table_asset("assignments_preview", ins={"crm_api_advisors": missing_ok_input()})
def assignments_preview(
    context: dg.AssetExecutionContext,
    client_dim: pd.DataFrame,
    territory_dim: pd.DataFrame,
    advisor_dim: pd.DataFrame,
    assignments_fact: pd.DataFrame,
    crm_api_advisors: pd.DataFrame | None,
    rules_files: RulesFiles,
    reference_files: ReferenceFiles,
) -> dg.Output[pd.DataFrame]:
    """What activating ``rules/candidate/territory_rules.yaml`` would change: evaluates the candidate on the current clients, territories and advisors and stores nothing else:
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
        return dg.Output(
            empty, metadata=table_metadata(empty, candidate=f"none: put a rules file at {rules_files.candidate_path}")
        )
    reference = reference_files.load()
    try:
        findings = check_rules(candidate, reference)
    except RulesError as exc:
        context.log.error(f"The candidate rules cannot be previewed: {exc}")
        empty = empty_frame(AssignmentsPreview)
        return dg.Output(empty, metadata=table_metadata(empty, candidate=f"invalid: {exc}"))
    # advisors are re-translated onto the candidate's territories (a new territory gets its advisors too)
    star = build_star(client_dim, candidate, reference, previous_territories=territory_dim, roster=crm_api_advisors)
    result = preview(assignments_fact, star, star.advisor_dim, territory_dim)
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
            secondary_rows_before=_current_secondary_rows(assignments_fact),
            secondary_rows_after=_current_secondary_rows(star.assignments.fact),
            per_territory=dg.MetadataValue.md(markdown_table(result.territories[result.territories["change"] != 0], limit=200)),
            per_advisor=dg.MetadataValue.md(markdown_table(result.advisors, limit=100)),
            load_balance=dg.MetadataValue.md(markdown_table(result.balance)),
            new_territories=dg.MetadataValue.md(markdown_table(result.new_territories, limit=50)),
            analysis_warnings=len(findings),
            activate=f"python -m crm_territory.cli activate-rules --version {candidate.version}",
        ),
    )
