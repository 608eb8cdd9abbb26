"""Activating a previewed candidate: an explicit act, only of the version the latest preview showed."""

from typing import cast

import dagster as dg

from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.resources.rules_files import RulesFiles


class ActivateRulesConfig(dg.Config):
    version: str
    """The candidate version shown by assignments_preview: activation refuses any other."""


@dg.op(description="Make the previewed candidate rules the active rules (the previous file is archived).")
def activate_candidate_rules(
    context: dg.OpExecutionContext, config: ActivateRulesConfig, rules_files: RulesFiles, reference_files: ReferenceFiles
) -> None:
    # only what someone could have looked at: the latest preview in this instance must be of this version
    last = context.instance.get_latest_materialization_event(dg.AssetKey("assignments_preview"))
    shown = last.asset_materialization.metadata if last and last.asset_materialization else {}
    previewed = shown.get("candidate_version")
    if previewed is None or previewed.value != config.version:
        raise dg.Failure(
            f"Rules {config.version} have not been previewed (latest preview: "
            f"{previewed.value if previewed else 'none'}). Materialize assignments_preview, review it, then activate the version it shows."
        )
    active_version = cast(str, shown["active_version"].value)  # the preview records it as text (a rules version)
    previous, archive = rules_files.activate(config.version, reference_files.load(), active_version)
    context.log.info(
        f"rules {config.version} are now active (was {previous}, archived at {archive}); materialize the star schema to apply them"
    )


@dg.job(
    description="Activate the candidate rules previewed by assignments_preview; run config: ops.activate_candidate_rules.config.version."
)
def activate_rules_job():
    activate_candidate_rules()
