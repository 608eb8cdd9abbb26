"""The preview of a candidate rules file: what would move, per client, territory and advisor; nothing moves."""

import dagster as dg
import pandas as pd
from pydantic import Field

from crm_territory.logic.rules.preview import CandidatePreview, current_secondary_rows, evaluate_candidate
from crm_territory.logic.rules.time_limit import ChildFailed, TimeLimitExceeded, run_with_time_limit
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles, check_rules
from crm_territory.schemas import AssignmentsPreview, empty_frame
from crm_territory.storage.table_store import missing_ok_input
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.metadata import markdown_table, table_metadata


class AssignmentsPreviewConfig(dg.Config):
    time_limit_seconds: float | None = Field(default=None, gt=0)
    """The most seconds evaluating the candidate may take; then it is stopped and the preview says so.
    Unset: CRM_PREVIEW_TIME_LIMIT_SECONDS as the definitions loaded it (default 120; crm_territory.settings)."""


def _time_limit(config: AssignmentsPreviewConfig, rules_files: RulesFiles) -> float:
    return config.time_limit_seconds if config.time_limit_seconds is not None else rules_files.preview_time_limit_seconds


def _empty(candidate: str, **extra: object) -> dg.Output[pd.DataFrame]:
    empty = empty_frame(AssignmentsPreview)
    return dg.Output(empty, metadata=table_metadata(empty, candidate=candidate, **extra))


@table_asset("assignments_preview", ins={"crm_api_advisors": missing_ok_input()})
def assignments_preview(
    context: dg.AssetExecutionContext,
    config: AssignmentsPreviewConfig,
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
    The candidate is evaluated in a child process under a time limit (run config ``time_limit_seconds``,
    or CRM_PREVIEW_TIME_LIMIT_SECONDS, default 120 s): a candidate that needs more is stopped and reported.
    A broken candidate is the author's problem, not the pipeline's: it is reported here and never fails the run.
    """
    path = rules_files.candidate_path
    if not path.is_file():  # the usual case: no child process to pay for
        context.log.info(f"No candidate rules at {path}: nothing to preview")
        return _empty(f"none: put a rules file at {path}")
    seconds = _time_limit(config, rules_files)
    try:
        result: CandidatePreview = run_with_time_limit(
            evaluate_candidate,
            (path, check_rules, reference_files.load(), client_dim, territory_dim, assignments_fact, crm_api_advisors),
            seconds,
        )
    except TimeLimitExceeded:
        meaning = (
            f"evaluating the candidate took more than {seconds:g} s and was stopped: there is no preview of it, "
            "and it cannot be activated (activation needs a preview). Nothing else is affected."
        )
        fix = (
            "Simplify the candidate (a regular expression that backtracks, thousands of rules or overrides), "
            "or, if it is sound and the book is large, raise the limit: run config ops.assignments_preview.config.time_limit_seconds "
            "or the CRM_PREVIEW_TIME_LIMIT_SECONDS environment variable (then reload the definitions)."
        )
        context.log.error(f"The candidate rules {path} cannot be previewed: {meaning} {fix}")
        return _empty(f"timed out after {seconds:g} s", time_limit_seconds=seconds, meaning=meaning, what_to_do=fix)
    except ChildFailed as exc:  # a bug the candidate hit in the engine: reported with its traceback, not raised
        context.log.error(f"The candidate rules {path} cannot be previewed: {exc.error}\n{exc.details}")
        return _empty(f"failed: {exc.error}", what_to_do="Report it with the candidate file and this run's log.")
    if result.status == "none":
        context.log.info(f"No candidate rules at {path}: nothing to preview")
        return _empty(f"none: put a rules file at {path}")
    if result.status == "invalid" or result.preview is None:
        context.log.error(f"The candidate rules cannot be previewed: {result.problem}")
        return _empty(f"invalid: {result.problem}")
    changes = result.preview.changes
    moved = int(changes["change"].str.contains("territory").sum())
    context.log.info(f"candidate {result.version}: {len(changes):,} clients would change ({moved:,} of territory)")
    return dg.Output(
        changes,
        metadata=table_metadata(
            changes,
            candidate_version=result.version,
            active_version=rules_files.load_active().version,
            clients_changing_territory=moved,
            clients_changing_advisor=int(changes["change"].str.contains("advisor").sum()),
            secondary_rows_before=current_secondary_rows(assignments_fact),
            secondary_rows_after=result.secondary_rows_after,
            per_territory=dg.MetadataValue.md(
                markdown_table(result.preview.territories[result.preview.territories["change"] != 0], limit=200)
            ),
            per_advisor=dg.MetadataValue.md(markdown_table(result.preview.advisors, limit=100)),
            load_balance=dg.MetadataValue.md(markdown_table(result.preview.balance)),
            new_territories=dg.MetadataValue.md(markdown_table(result.preview.new_territories, limit=50)),
            analysis_warnings=result.analysis_warnings,
            time_limit_seconds=seconds,
            activate=f"python -m crm_territory.cli activate-rules --version {result.version}",
        ),
    )
