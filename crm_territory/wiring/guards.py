"""Guards: a stored table that vanished must not silently restart; the rules must not change under a run."""

from typing import cast

import dagster as dg
import pandas as pd

from crm_territory.logic.rules.model import Rules
from crm_territory.resources.rules_files import RulesFiles


def refuse_to_forget(context: dg.AssetExecutionContext, what: str, override: str | None = None) -> None:
    """Fail when this asset's stored table is missing but this instance remembers publishing rows of it."""
    last = context.instance.get_latest_materialization_event(context.asset_key)
    if last is None or last.asset_materialization is None:
        return
    row_count = last.asset_materialization.metadata.get("dagster/row_count")
    # table_metadata records dagster/row_count as MetadataValue.int: its value is an int
    if row_count is not None and cast(int, row_count.value) > 0:
        name = context.asset_key.to_user_string()
        how = f", or re-run with {override} to start afresh" if override else ""
        raise dg.Failure(
            description=(
                f"The stored {name} ({what}) is empty or missing, but run {last.run_id[:8]} published {row_count.value} rows. "
                f"Starting again would lose them. Restore the table (on Snowflake: Time Travel, e.g. CREATE TABLE ... CLONE ... "
                f"AT(OFFSET => -3600)){how}."
            )
        )


def rules_in_force(rules_files: RulesFiles, territory_rules: pd.DataFrame) -> Rules:
    """The active rules, and the same version territory_rules validated earlier in this run."""
    rules = rules_files.load_active()
    validated = set(territory_rules["rules_version"]) or {rules.version}
    if validated != {rules.version}:
        raise dg.Failure(
            f"The rules file changed during the run (validated {', '.join(sorted(validated))}, now {rules.version}). "
            "Re-run: territory_rules validates the file first."
        )
    return rules
