"""Entity resolution between raw_clients and client_dim: client_xref, client_matches, client_key_retirements."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pandas as pd
from pydantic import Field

from crm_territory.logic.integrity import client_keys_not_one_cluster, records_not_in_one_client
from crm_territory.logic.matching.client_dim import client_records
from crm_territory.logic.matching.client_keys import xref_from_client_dim
from crm_territory.logic.matching.comparisons import ComparisonsError
from crm_territory.logic.matching.decisions import MatchDecisionsError
from crm_territory.logic.matching.incremental import IncrementalBasis, matcher_code_version, record_changes
from crm_territory.logic.matching.resolve import MAX_MUST_LINK_GROUP, MAX_MUST_LINK_SHARE, incremental_basis, resolve
from crm_territory.logic.reference.reference_data import ReferenceData
from crm_territory.resources.match_decisions_file import MatchDecisionsFile
from crm_territory.resources.reference_files import ReferenceFiles
from crm_territory.schemas import MatchModel, empty_frame
from crm_territory.storage.table_set_io import TableSetIOManager
from crm_territory.storage.table_store import TableStore
from crm_territory.wiring import run_memo
from crm_territory.wiring.assets import TABLES_POOL, table_out
from crm_territory.wiring.automation import FOLLOW_UPSTREAM
from crm_territory.wiring.checks import violations_result
from crm_territory.wiring.guards import published_metadata
from crm_territory.wiring.metadata import markdown_table, table_metadata

T = TypeVar("T")

# Beyond this share of the book changed, scoring the touched pairs again costs about what scoring all of them does.
INCREMENTAL_UP_TO = 0.1
INPUT_NAMES = {"reference": "the reference tables", "matcher_code": "the matching code"}


class ClientXrefConfig(dg.Config):
    max_must_link_group: int = MAX_MUST_LINK_GROUP
    """The most records human must-link decisions may join into one client; a longer chain stops the run."""
    max_must_link_share: float = Field(default=MAX_MUST_LINK_SHARE, gt=0, le=1)
    """The largest share of the book's records must-link decisions may merge into other records, all groups
    together (at least 50 records); more stops the run."""
    accept_large_must_link_groups: bool = False
    """Honour must-links over either limit (a deliberate mass merge, checked by someone)."""
    full_refresh: bool = False
    """Resolve every pair of the book again, even when only a few records changed since the last run (the result
    is the same: an incremental run scores again only the pairs the changes can affect)."""
    incremental_up_to: float = Field(default=INCREMENTAL_UP_TO, gt=0, le=1)
    """The largest share of the book that may have changed for the run to be incremental; beyond it a full
    resolution is as cheap."""


@dg.multi_asset(
    outs={
        "client_xref": table_out(
            "client_xref",
            "-> client_key, with how it was linked (only record, matched, human decision) and why a name could not be matched. "
            "client_key is stable: a record joining a client never changes the client's key.",
            automation_condition=FOLLOW_UPSTREAM,
        ),
        "client_matches": table_out(
            "client_matches",
            "The name score, each field's agreement, the level and points of each optional field (tax id, date of birth, "
            "postcode, domain, phone), the total score, the decision and whether the two records ended in one "
            "client. Confirm or reject a pair in data/matching/decisions.csv.",
            automation_condition=FOLLOW_UPSTREAM,
        ),
        "match_model": table_out(
            "match_model",
            "Written by the client_xref step: m by expectation-maximisation over the candidate pairs (priors from "
            "data/matching/comparisons.yaml or the built-in ones as start and fallback), u from the book; both reused by later "
            "runs until the comparisons change or the records having a field change by more than 10%; the metadata says which and why.",
            automation_condition=FOLLOW_UPSTREAM,
        ),
        "client_key_retirements": table_out(
            "client_key_retirements",
            "The older key that survived is named (follow the chain if that one was retired later).",
            automation_condition=FOLLOW_UPSTREAM,
        ),
    },
    pool=TABLES_POOL,
    # raw_clients is read in the step (read_in_step), not taken as an input: the step lets the million-row frame go
    # once the records are built, before the matcher's own peak (an input stays referenced until the step ends)
    deps=["raw_clients"],
    # Checked in the asset, on the tables it has in memory: re-reading a million-row raw_clients and
    # client_xref from storage for a separate check would cost more than the check.
    check_specs=[
        dg.AssetCheckSpec(
            "client_xref_covers_every_record",
            asset="client_xref",
            blocking=True,
            description="Every source record of raw_clients is in exactly one client of client_xref, and client_xref holds no other record.",
        ),
        dg.AssetCheckSpec(
            "client_keys_name_one_cluster_each",
            asset="client_xref",
            blocking=True,
            description="Each client_key is exactly one cluster (records joined by merged pairs in client_matches), each cluster one key, and no retired key is in use.",
        ),
    ],
)
def client_xref(
    context: dg.AssetExecutionContext,
    config: ClientXrefConfig,
    reference_files: ReferenceFiles,
    match_decisions: MatchDecisionsFile,
    table_store: TableStore,
):
    """Entity resolution: one client per real organisation across the CRM API and the drops (see crm_territory/logic/matching/resolve.py)."""
    now = pd.Timestamp.now(tz="UTC")
    decisions = _load_or_fail(match_decisions.load, "match decisions", match_decisions.path, MatchDecisionsError)
    comparisons = _load_or_fail(
        match_decisions.load_comparisons, "comparisons", match_decisions.comparisons_path, ComparisonsError
    )
    reference = reference_files.load()
    io_manager = context.resources.io_manager
    assert isinstance(io_manager, TableSetIOManager), (
        f"client_xref reads raw_clients through the table-set IO manager, not {io_manager!r}"
    )
    raw_clients = io_manager.read_in_step("raw_clients")
    records = client_records(raw_clients, reference)
    raw_records = raw_clients[["source_system", "client_id"]].copy()  # what the coverage check needs of it
    # client_dim starts from the same records: handed over rather than computed twice (wiring/run_memo.py)
    run_memo.hand_over(context.run_id, "client_records", reference.fingerprint, records)
    previous_xref = table_store.read_previous("client_xref")
    if previous_xref is None:
        previous_xref = _xref_from_client_dim(context, table_store.read_previous("client_dim"))
    inputs = {"reference": reference.fingerprint, "matcher_code": matcher_code_version()}
    if config.full_refresh:
        basis, why = None, "full: the run config asked for a full refresh (ops.client_xref.config.full_refresh)"
    else:
        basis, why = _incremental_basis(
            context, table_store, raw_clients, reference, previous_xref, inputs, config.incremental_up_to
        )
    del raw_clients
    context.log.info(f"entity resolution: {why}")
    try:
        resolution = resolve(
            records,
            decisions,
            previous_xref,
            table_store.read_previous("client_key_retirements"),
            now,
            log=context.log.info,
            max_must_link_group=None if config.accept_large_must_link_groups else config.max_must_link_group,
            max_must_link_share=None if config.accept_large_must_link_groups else config.max_must_link_share,
            comparisons=comparisons,
            previous_model=table_store.read_previous("match_model"),
            incremental=basis,
        )
    except MatchDecisionsError as error:
        raise dg.Failure(
            description=f"The match decisions cannot all be honoured: {error}. Nothing was published; fix the file and re-run.",
            metadata={"file": str(match_decisions.path)},
        ) from error
    stats = {k: v for k, v in resolution.stats.items() if k not in ("seconds_by_step", "candidate_pairs_by_blocking_key", "mode")}
    context.log.info(
        f"entity resolution: {stats['records']:,} records -> {stats['clients']:,} clients "
        f"({stats['records_merged_into_another']:,} merged, {stats['possible_pairs_for_review']:,} possible pairs to review)"
    )
    if stats["human_decisions_not_applied"]:
        context.log.warning(
            f"{stats['human_decisions_not_applied']} decision(s) in {match_decisions.path} name records not in the book; kept, not applied"
        )

    # Written in this order so that a failed write never loses what the next run needs: the ledger of
    # retired keys first, the client_xref (which the next run starts from) last.
    yield dg.Output(
        resolution.retirements,
        output_name="client_key_retirements",
        metadata=table_metadata(resolution.retirements, retired_this_run=stats["client_keys_retired_this_run"]),
    )
    model = resolution.model if resolution.model is not None else empty_frame(MatchModel)
    yield dg.Output(
        model,
        output_name="match_model",
        metadata=table_metadata(
            model,
            parameters=dg.MetadataValue.md(
                markdown_table(
                    model[
                        [
                            "field",
                            "level",
                            "m",
                            "m_prior",
                            "m_source",
                            "u",
                            "bits",
                            "points",
                            "records_with_field",
                            "pairs_with_field",
                            "decision_pairs",
                        ]
                    ],
                    limit=30,
                )
            ),
            re_estimated=resolution.model_re_estimated,
            why=resolution.model_reason,
            model_version=str(model["model_version"].iloc[0]) if len(model) else "",
            comparisons=f"{comparisons.source} (version {comparisons.version})",
            em_iterations=int(model["em_iterations"].iloc[0]) if len(model) else 0,
            em_converged=bool(model["em_converged"].iloc[0]) if len(model) else False,
            training_pairs=int(model["training_pairs"].iloc[0]) if len(model) else 0,
        ),
    )
    matches = resolution.matches
    yield dg.Output(
        matches,
        output_name="client_matches",
        metadata=table_metadata(
            matches,
            by_decision=dg.MetadataValue.md(
                markdown_table(matches.groupby(["decision", "merged"]).size().rename("pairs").reset_index())
            ),
            possible_pairs_to_review=dg.MetadataValue.md(
                # already nearest the match threshold first (resolve.py): the pairs a review most likely changes
                markdown_table(matches[matches["decision"] == "possible"], limit=20)
            ),
            # what each level of each field adds, and why: the match_model asset's page (one table, not two)
            weights="see the match_model asset: m, u, bits and points per field and level",
            **(
                {"decisions_not_applied": dg.MetadataValue.md(markdown_table(resolution.decisions_not_applied, limit=20))}
                if resolution.decisions_not_applied is not None and len(resolution.decisions_not_applied)
                else {}
            ),
        ),
    )
    xref = resolution.xref
    yield dg.Output(
        xref,
        output_name="client_xref",
        metadata=table_metadata(
            xref,
            **stats,
            seconds_by_step=dg.MetadataValue.json(resolution.stats["seconds_by_step"]),
            # incremental, or full and why; and what the next run checks before it starts from these tables
            resolution_mode=resolution.stats["mode"] if basis is not None else why,
            incremental_basis=dg.MetadataValue.json(inputs),
            # each blocking pass: the pairs it found (a pair found by several passes is scored once)
            candidate_pairs_by_blocking_key=dg.MetadataValue.json(resolution.stats["candidate_pairs_by_blocking_key"]),
            unmatchable_by_reason=dg.MetadataValue.md(
                markdown_table(xref["unmatchable_reason"].value_counts().rename_axis("reason").reset_index(name="records"))
            ),
        ),
    )
    yield violations_result(
        records_not_in_one_client(raw_records, xref),
        counted="records_not_in_one_client",
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Records were lost or duplicated by entity resolution: a bug in crm_territory/logic/matching/resolve.py; report it with these records.",
        asset_key="client_xref",
        check_name="client_xref_covers_every_record",
        records=len(xref),
    )
    yield violations_result(
        client_keys_not_one_cluster(xref, matches, resolution.retirements),
        counted="client_keys_not_one_cluster",
        blocking_severity=dg.AssetCheckSeverity.ERROR,
        next_step="Client keys and clusters disagree: a bug in crm_territory/logic/matching/client_keys.py or clustering.py; report it with these keys.",
        asset_key="client_xref",
        check_name="client_keys_name_one_cluster_each",
        client_keys=int(xref["client_key"].nunique()),
    )


def _incremental_basis(
    context: dg.AssetExecutionContext,
    table_store: TableStore,
    raw_clients: pd.DataFrame,
    reference: ReferenceData,
    previous_xref: pd.DataFrame | None,
    inputs: dict[str, str],
    up_to: float,
) -> tuple[IncrementalBasis | None, str]:
    """What an incremental resolution starts from (None: resolve in full), and why, in the log's words."""
    previous_matches = table_store.read_previous("client_matches")
    previous_raw = table_store.read_previous("raw_clients")
    if previous_xref is None or previous_matches is None or previous_raw is None:
        return None, "full: no published client_xref, client_matches and raw_clients to start from"
    published = published_metadata(context.instance, dg.AssetKey("client_xref"), table_store, "client_xref", "incremental_basis")
    if not isinstance(published, Mapping):
        return None, (
            "full: this Dagster instance has no record of the inputs the published client_xref was computed from "
            "(published before incremental runs, or by another instance)"
        )
    moved = [name for name, value in inputs.items() if published.get(name) != value]
    if moved:
        return None, "full: " + " and ".join(INPUT_NAMES.get(m, m) for m in moved) + " changed since the published run"
    changes = record_changes(previous_raw, raw_clients)
    if changes.count > up_to * max(len(previous_xref), 1):
        return None, f"full: {changes.count:,} of {len(previous_xref):,} records changed, more than {up_to:.0%}"
    before = client_records(changes.before, reference)
    basis = incremental_basis(previous_matches, changes, before, len(previous_xref))
    return (
        basis,
        f"incremental: {len(changes.changed):,} records new or changed and {len(changes.removed):,} removed since the published run",
    )


def _load_or_fail(load: Callable[[], T], what: str, path: Path, error_type: type[Exception]) -> T:
    """A configuration file of entity resolution, or a failure naming the file and what to do (nothing published)."""
    try:
        return load()
    except error_type as error:
        raise dg.Failure(
            description=f"The {what} file cannot be used: {error}. Nothing was published; fix the file and re-run.",
            metadata={"file": str(path)},
        ) from error


def _xref_from_client_dim(context: dg.AssetExecutionContext, client_dim: pd.DataFrame | None) -> pd.DataFrame | None:
    """No client_xref stored: start from the previous client_dim's keys (the upgrade path; see xref_from_client_dim)."""
    if client_dim is None or client_dim.empty:
        return None
    context.log.warning(
        f"No client_xref stored: keeping the {len(client_dim):,} client keys of the previous client_dim (each held by its source record)"
    )
    return xref_from_client_dim(client_dim)
