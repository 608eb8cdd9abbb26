"""History (SCD Type 2) of client_dim and assignments_fact: every version, with its validity interval."""

from typing import Any

import dagster as dg
import pandas as pd

from crm_territory.logic.history.scd2 import apply_scd2, assignments_snapshot, check_history
from crm_territory.schemas import AssignmentsFactHistory, ClientDimHistory, columns_of
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.guards import refuse_to_forget
from crm_territory.wiring.metadata import markdown_table, table_metadata

CLIENT_KEY = ["client_key"]
# what makes a new client version: the attributes people act on (not provenance or derived notes)
CLIENT_TRACKED = [
    "client_name",
    "region",
    "segment",
    "parent_org",
    "primary_advisor_email",
    "is_active",
    "aum_usd",
    "business_type",
]
ASSIGNMENT_KEY = ["client_key", "territory_id", "assignment_type"]
# a new assignment version when the advisor, the current flag or the placing rule changes; a rules
# edit that places a client the same way (only rules_version differs) is not a new version
ASSIGNMENT_TRACKED = ["primary_advisor_email", "assignment_is_current", "assigned_by", "segment_rule"]


def _versions_summary(history: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, int]:
    opened = int((history["valid_from"] == as_of).sum())
    closed = int((history["valid_to"] == as_of).sum())
    return {"versions_opened": opened, "versions_closed": closed, "open_versions": int(history["is_current"].sum())}


HOW = """Unchanged input adds no rows; a changed tracked attribute closes the open version and opens a new one;
a key that disappears is closed, not deleted; one that comes back reopens. Tracked: {tracked}."""


def _attributes(name: str, tracked: list[str]) -> dict[str, Any]:
    """What the two history assets share beyond their table spec: how they are built, the interval check."""
    return dict(
        how=HOW.format(tracked=", ".join(tracked)),
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=[
            dg.AssetCheckSpec(
                f"{name}_intervals_valid",
                asset=name,
                blocking=True,
                description="One open version per key, no overlapping or empty intervals, is_current matches valid_to.",
            )
        ],
    )


def _record(context, table_store: TableStore, name: str, snapshot: pd.DataFrame, key: list[str], tracked: list[str], model):
    """Apply the snapshot to the stored history; yield the new history and its interval check."""
    # one instant per run for every history table (the run's start), to the second every storage keeps
    record = context.instance.get_run_record_by_id(context.run.run_id)
    as_of = pd.Timestamp(record.create_timestamp if record else pd.Timestamp.now(tz="UTC")).tz_convert("UTC").floor("s")
    previous = table_store.read_previous(name)
    if previous is None:
        refuse_to_forget(context, table_store, "history")
    history = apply_scd2(previous, snapshot, key=key, tracked=tracked, as_of=as_of)[columns_of(model)]
    summary = _versions_summary(history, as_of)
    context.log.info(
        f"{name}: {summary['versions_opened']:,} versions opened, {summary['versions_closed']:,} closed, {len(history):,} rows"
    )
    yield dg.Output(history, metadata=table_metadata(history, **summary))
    problems = check_history(history, key)
    yield dg.AssetCheckResult(
        check_name=f"{name}_intervals_valid",
        passed=problems.empty,
        metadata={
            "interval_problems": len(problems),
            **({"sample": dg.MetadataValue.md(markdown_table(problems, limit=20))} if len(problems) else {}),
        },
    )


@table_asset("client_dim_history", **_attributes("client_dim_history", CLIENT_TRACKED))
def client_dim_history(context: dg.AssetExecutionContext, client_dim: pd.DataFrame, table_store: TableStore):
    yield from _record(context, table_store, "client_dim_history", client_dim, CLIENT_KEY, CLIENT_TRACKED, ClientDimHistory)


@table_asset("assignments_fact_history", **_attributes("assignments_fact_history", ASSIGNMENT_TRACKED))
def assignments_fact_history(context: dg.AssetExecutionContext, assignments_fact: pd.DataFrame, table_store: TableStore):
    yield from _record(
        context,
        table_store,
        "assignments_fact_history",
        assignments_snapshot(assignments_fact),
        ASSIGNMENT_KEY,
        ASSIGNMENT_TRACKED,
        AssignmentsFactHistory,
    )
