"""The golden client dimension: one row per client, from the records client_xref says are one."""

import dagster as dg
import pandas as pd

from crm_territory.logic.matching.client_dim import client_dim_from_records, client_records
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.storage.table_set_io import TableSetIOManager
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring import run_memo
from crm_territory.wiring.assets import table_asset
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.checks import violations_result
from crm_territory.wiring.metadata import table_metadata


class ClientDimConfig(dg.Config):
    accept_client_loss: bool = False
    """Publish even if more than half of the previous clients are gone (a deliberate clean-up of the landing zone)."""


LOSS_LIMIT = 0.5  # share of the previous clients whose disappearance stops client_dim


@table_asset(
    "client_dim",
    automation_condition=FOLLOW_UPSTREAM,
    # raw_clients is read only when this run's client_xref step did not hand its records over (run_memo): as an
    # input it would be loaded every time, a second copy of a million-row table for nothing (~0.7 GB, ~3 s at 1M)
    deps=["raw_clients"],
    check_specs=[
        dg.AssetCheckSpec(
            "client_dim_keeps_previous_clients",
            asset="client_dim",
            description="Clients present in the previous client_dim and gone now (their drop was removed, or the CRM stopped sending them); keys retired by a merge are not gone. WARN.",
        )
    ],
)
def client_dim(
    context: dg.AssetExecutionContext,
    config: ClientDimConfig,
    client_xref: pd.DataFrame,
    client_key_retirements: pd.DataFrame,
    reference_files: ReferenceFiles,
    table_store: TableStore,
):
    """client_xref says which source records are one client; each field of the row comes from the
    record the survivorship rules pick (a usable value first, then the CRM over drops, then the most
    recent; see crm_territory/logic/matching/survivorship.py). ``source_record_count`` says how many records
    were merged. Region and segment are canonicalised through the alias tables in ``reference/``
    (unknown spellings stay visible in ``data_issues``); the advisor e-mail is lower-cased and
    validated; is_active comes from the source's status (a client never given one is active).

    Guard: if more than half of the previous clients would disappear (an empty or unmounted landing
    zone, the wrong CRM_DATA_DIR), the asset fails before publishing; run config
    ``accept_client_loss: true`` publishes anyway. Keys retired by a merge do not count as lost.
    """
    reference = reference_files.load()
    # the records client_xref resolved, when this run's client_xref step handed them over; else computed again
    records = run_memo.take(context.run_id, "client_records", reference.fingerprint)
    records_from = "handed over by this run's client_xref step"
    if records is None:
        io_manager = context.resources.io_manager
        assert isinstance(io_manager, TableSetIOManager), (
            f"client_dim reads raw_clients through the table-set IO manager, not {io_manager!r}"
        )
        raw_clients = io_manager.read_in_step("raw_clients")
        records, records_from = client_records(raw_clients, reference), "computed from raw_clients in this step"
    dim = client_dim_from_records(records, client_xref)
    merged = int((dim["source_record_count"] > 1).sum())
    context.log.info(
        f"client_dim: {len(dim):,} clients from {len(client_xref):,} source records ({merged:,} clients merge several)"
    )

    previous = table_store.read_previous("client_dim")
    gone = pd.Index([]) if previous is None else pd.Index(previous["client_key"]).difference(pd.Index(dim["client_key"]))
    retired = gone.intersection(pd.Index(client_key_retirements["retired_client_key"]))
    gone = gone.difference(retired)
    if previous is not None and len(previous) and len(gone) > LOSS_LIMIT * len(previous) and not config.accept_client_loss:
        raise dg.Failure(
            description=(
                f"client_dim would lose {len(gone):,} of its {len(previous):,} clients ({len(gone) / len(previous):.0%}). "
                "Is the landing zone empty or unmounted, or CRM_DATA_DIR wrong? Nothing was published. "
                "If the loss is intended, re-run with run config ops.client_dim.config.accept_client_loss: true."
            ),
            metadata={"clients_before": len(previous), "clients_now": len(dim), "sample_gone": ", ".join(gone[:20])},
        )

    unknown = int((dim["region"].isna() | dim["segment"].isna()).sum())
    yield dg.Output(
        dim,
        metadata=table_metadata(
            dim,
            preview=dim[["client_key", "client_name", "region", "segment", "is_active", "data_issues"]],
            active_clients=int(dim["is_active"].sum()),
            clients_with_unknown_region_or_segment=unknown,
            clients_without_valid_advisor_email=int(dim["primary_advisor_email"].isna().sum()),
            clients_gone_since_previous=len(gone),
            clients_merged_since_previous=len(retired),
            clients_with_several_source_records=merged,
            client_records=records_from,
        ),
    )
    yield violations_result(
        gone_clients(previous, gone),
        counted="clients_gone",
        check_name="client_dim_keeps_previous_clients",
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="If a drop was removed by mistake, put it back in landing/ and re-run.",
        clients_before=0 if previous is None else len(previous),
        keys_retired_by_merges=len(retired),
    )


GONE_COLUMNS = ["client_key", "client_name", "source_system", "source_record_id", "is_active"]


def gone_clients(previous: pd.DataFrame | None, gone: pd.Index) -> pd.DataFrame:
    """The clients of ``gone`` as the previous client_dim named them, by client_key.

    Where each came from (source system and record id) says which drop or feed stopped sending it.
    """
    if previous is None:
        return pd.DataFrame(columns=GONE_COLUMNS)
    # reindex: a client_dim stored by an older version may lack one of these columns
    rows = previous.loc[previous["client_key"].isin(gone)].reindex(columns=GONE_COLUMNS)
    return rows.sort_values("client_key", kind="stable").reset_index(drop=True)
