"""The write-back plan of the sources that take files: what each must import to hold the current PRIMARY advisors."""

import dagster as dg
import pandas as pd

from crm_territory.logic.writeback.outbound import build_outbound_plan, outbound_layouts
from crm_territory.resources.landing import LandingZone
from crm_territory.storage.table_set_io import TableSetIOManager
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.metadata import markdown_table, table_metadata

# The columns the plan reads: at a million clients loading these four tables whole made this step the run's memory
# peak (+1.75 GB); read through the run's IO manager, this run's version first, the CSV storage parses only these.
_RAW = ["source_system", "source_record_id", "advisor_email", "source_modified_at", "ingested_at", "source_row"]
_XREF = ["source_system", "source_record_id", "client_key"]
_FACT = ["client_key", "territory_id", "primary_advisor_email", "assigned_by", "assignment_type", "is_current"]
_ADVISORS = ["advisor_email", "active"]


@table_asset(
    "crm_outbound_plan",
    automation_condition=FOLLOW_UPSTREAM,
    deps=["raw_clients", "client_xref", "assignments_fact", "advisor_dim"],
    required_resource_keys={"io_manager", "landing"},
)
def crm_outbound_plan(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
    """For every source that takes files (each layout in ``data/sources/``, and the seed's ``csv_drop``): the records
    whose owner in the source's latest export differs from the current PRIMARY advisor of their client, old -> new,
    with the rule that placed it and the owner as the source spells owners (its layout's map, inverted).

    Nothing is written to any source here: ``python -m crm_territory.cli writeback export`` (or ``crm_writeback_job``
    with action export) writes one import file per source, in its own layout, under ``data/outbound/``. A source
    whose layout cannot carry owners back (no owner column, a template) has its rows refused, saying why.
    """
    landing = context.resources.landing
    assert isinstance(landing, LandingZone), f"crm_outbound_plan reads the layouts of a landing zone, not {landing!r}"
    layouts = outbound_layouts(landing.layouts())
    io_manager = context.resources.io_manager
    assert isinstance(io_manager, TableSetIOManager), f"crm_outbound_plan needs the table-set IO manager, not {io_manager!r}"
    id_fields = sorted({origin for layout in layouts.values() for _, origin in layout.id_columns} - {"source_record_id"})
    raw_clients = io_manager.read_columns_for_run("raw_clients", _RAW + id_fields)
    client_xref = io_manager.read_columns_for_run("client_xref", _XREF)
    assignments_fact = io_manager.read_columns_for_run("assignments_fact", _FACT)
    advisor_dim = io_manager.read_columns_for_run("advisor_dim", _ADVISORS)
    plan = build_outbound_plan(raw_clients, client_xref, assignments_fact, advisor_dim, layouts, pd.Timestamp.now(tz="UTC"))
    per_source = (
        plan.groupby(["source_system", "status"]).size().unstack(fill_value=0).reindex(columns=["send", "refused"], fill_value=0)
        if len(plan)
        else pd.DataFrame(columns=["send", "refused"])
    )
    cannot = {s: layout.why_not for s, layout in layouts.items() if layout.why_not}
    context.log.info(
        f"crm_outbound_plan: {int((plan['status'] == 'send').sum()):,} file-source record(s) to change in "
        f"{len(per_source)} source(s), {int((plan['status'] == 'refused').sum()):,} refused"
    )
    return dg.Output(
        plan,
        metadata=table_metadata(
            plan,
            preview=plan[["source_system", "source_record_id", "owner_before", "owner_as_written", "territory_after", "status"]],
            plan_id=str(plan["plan_id"].iloc[0]) if len(plan) else "",
            per_source=dg.MetadataValue.md(markdown_table(per_source.rename_axis("source_system").reset_index(), limit=50)),
            refused_rows=dg.MetadataValue.md(
                markdown_table(
                    plan.loc[plan["status"] == "refused", ["source_system", "source_record_id", "refusal_reason"]], limit=20
                )
            ),
            **(
                {"sources_without_owner_file": dg.MetadataValue.md("\n".join(f"- {s}: {why}" for s, why in cannot.items()))}
                if cannot
                else {}
            ),
            next_step="Review, then write the import files: python -m crm_territory.cli writeback export "
            "(data/outbound/<source>/<source>-owners-<plan_id>.csv), and import each into its source.",
        ),
    )
