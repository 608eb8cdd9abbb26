"""One Pandera model per table: the single source of column names, types and rules.

The CSV reader's dtypes (``crm_territory.storage``) and the blocking asset checks
(``crm_territory.defs.checks``) derive from these models; the warehouse DDL
(``infra/snowflake/tables.sql``) is written by hand and tested against them column by column.
``TABLES`` says where each table lives (its layer: raw, core or quarantine).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]

# A pragmatic e-mail shape: one "@", no spaces, a dot in the domain. Deliverability is not our job.
EMAIL_PATTERN = r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
# Source identifiers: letters, digits, '-', '_' and '.', at most 64 characters.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

SOURCE_SYSTEMS = ["crm_api", "csv_drop"]
# why a PRIMARY row has its advisor: capacity assignment's reasons, and the cases it does not handle
ADVISOR_REASONS = [
    "kept", "pinned", "assigned_new", "reassigned_inactive", "reassigned_not_serving", "reassigned_over_capacity",
    "reassigned_unknown_advisor", "no_advisor_for_territory", "inactive_client", "unassigned_territory", "no_roster",
]  # fmt: skip
ASSIGNMENT_TYPES = ["PRIMARY", "SECONDARY"]
UNASSIGNED_TERRITORY_ID = "UNASSIGNED"


class _StrictModel(pa.DataFrameModel):
    class Config:
        strict = True  # no column the model does not name
        coerce = False  # the reader produces exact dtypes; a mismatch is a bug to surface


class CrmApiClients(_StrictModel):
    """Snapshot of the CRM API's client book: one row per CRM client id, as the API last sent it."""

    client_id: Series[str] = pa.Field(nullable=True)
    client_name: Series[str] = pa.Field(nullable=True)
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    parent_org: Series[str] = pa.Field(nullable=True)
    advisor_email: Series[str] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(nullable=True)
    aum_usd: Series[str] = pa.Field(nullable=True)  # kept as sent (text); parsed in client_dim
    business_type: Series[str] = pa.Field(nullable=True)
    updated_at: Series[str] = pa.Field(nullable=True)  # kept as sent; parsed (or quarantined) downstream
    source_page: Series[pd.Int64Dtype] = pa.Field(ge=1)
    pulled_at: Series[UtcTimestamp]


class CrmApiAdvisors(_StrictModel):
    """The CRM API's advisor roster as last pulled. Grain: one row per advisor record sent."""

    advisor_email: Series[str] = pa.Field(nullable=True)
    advisor_name: Series[str] = pa.Field(nullable=True)
    regions: Series[str] = pa.Field(nullable=True)  # ';'-joined, as the CRM spells them
    segments: Series[str] = pa.Field(nullable=True)
    capacity: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    active: Series[bool]
    pulled_at: Series[UtcTimestamp]


class AdvisorDim(_StrictModel):
    """Advisor dimension. Grain: one row per advisor e-mail."""

    advisor_email: Series[str] = pa.Field(unique=True, str_matches=EMAIL_PATTERN)
    advisor_name: Series[str] = pa.Field(nullable=True)
    territories: Series[str] = pa.Field(nullable=True)  # ';'-joined territory ids served
    capacity: Series[pd.Int64Dtype] = pa.Field(ge=0)
    active: Series[bool]


class RawClients(_StrictModel):
    """Every usable source row: one row per (source batch, source row); several versions of a client may exist."""

    client_id: Series[str] = pa.Field(str_matches=CLIENT_ID_PATTERN)
    client_name: Series[str] = pa.Field(str_length={"min_value": 1})
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    parent_org: Series[str] = pa.Field(nullable=True)
    advisor_email: Series[str] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(nullable=True, isin=["active", "inactive"])
    aum_usd: Series[str] = pa.Field(nullable=True)  # as sent; client_dim parses it
    business_type: Series[str] = pa.Field(nullable=True)
    source_system: Series[str] = pa.Field(isin=SOURCE_SYSTEMS)
    source_record_id: Series[str]
    source_file: Series[str] = pa.Field(nullable=True)
    source_row: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    source_page: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    source_modified_at: Series[UtcTimestamp]
    ingested_at: Series[UtcTimestamp]


class QuarantinedClients(_StrictModel):
    """Source rows that could not be used: one row per rejected source row, with why and what it held."""

    source_system: Series[str] = pa.Field(isin=SOURCE_SYSTEMS)
    source_file: Series[str] = pa.Field(nullable=True)
    source_row: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    source_page: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    source_record_id: Series[str] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    original_values: Series[str]
    ingested_at: Series[UtcTimestamp]


class IngestManifest(_StrictModel):
    """What each run ingested: one row per source batch (a landing file, or the CRM API snapshot)."""

    source_system: Series[str] = pa.Field(isin=SOURCE_SYSTEMS)
    batch: Series[str] = pa.Field(unique=True)
    size_bytes: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0)
    modified_at: Series[UtcTimestamp] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=["loaded", "rejected"])
    rows_read: Series[pd.Int64Dtype] = pa.Field(ge=0)
    rows_loaded: Series[pd.Int64Dtype] = pa.Field(ge=0)
    rows_quarantined: Series[pd.Int64Dtype] = pa.Field(ge=0)
    message: Series[str] = pa.Field(nullable=True)
    ingested_at: Series[UtcTimestamp]


class ClientDim(_StrictModel):
    """One row per client (client_key), its latest version across sources, canonicalised."""

    client_key: Series[str] = pa.Field(unique=True)
    client_name: Series[str] = pa.Field(str_length={"min_value": 1})
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    parent_org: Series[str] = pa.Field(nullable=True)
    primary_advisor_email: Series[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    is_active: Series[bool]
    aum_usd: Series[float] = pa.Field(nullable=True, ge=0)
    business_type: Series[str] = pa.Field(nullable=True)
    source_system: Series[str] = pa.Field(isin=SOURCE_SYSTEMS)
    source_record_id: Series[str]
    source_modified_at: Series[UtcTimestamp]
    source_record_count: Series[pd.Int64Dtype] = pa.Field(ge=1)  # source records merged into this client (client_xref lists them)
    data_issues: Series[str] = pa.Field(nullable=True)


class ClientXref(_StrictModel):
    """Which client each source record belongs to. Grain: one row per source record (source_system, source_record_id)."""

    source_system: Series[str] = pa.Field(isin=SOURCE_SYSTEMS)
    source_record_id: Series[str] = pa.Field(str_matches=CLIENT_ID_PATTERN)
    client_key: Series[str] = pa.Field(str_length={"min_value": 1})
    records_in_client: Series[pd.Int64Dtype] = pa.Field(ge=1)
    linked_by: Series[str] = pa.Field(isin=["only record", "matched", "human decision"])
    unmatchable_reason: Series[str] = pa.Field(nullable=True)  # why the name cannot be matched (stays alone)
    client_key_issued_at: Series[UtcTimestamp]
    first_seen_at: Series[UtcTimestamp]

    @pa.dataframe_check(error="a source record appears in client_xref more than once")
    def one_row_per_record(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["source_system", "source_record_id"], keep=False)


class ClientMatches(_StrictModel):
    """Scored record pairs worth a look. Grain: one row per pair (record_a < record_b) the matcher found alike, or a human decided."""

    record_a: Series[str]
    record_b: Series[str]
    client_name_a: Series[str] = pa.Field(nullable=True)
    client_name_b: Series[str] = pa.Field(nullable=True)
    name_score: Series[float] = pa.Field(ge=0, le=100)
    name_difference: Series[str] = pa.Field(
        isin=["same words", "typo or abbreviation", "different words", "different word count", "not compared (unmatchable name)"]
    )
    region_agreement: Series[str] = pa.Field(isin=["agree", "disagree", "unknown"])
    parent_org_agreement: Series[str] = pa.Field(isin=["agree", "disagree", "unknown"])
    advisor_email_agreement: Series[str] = pa.Field(isin=["agree", "disagree", "unknown"])
    advisor_domain_agreement: Series[str] = pa.Field(isin=["agree", "disagree", "unknown"])
    score: Series[float]
    decision: Series[str] = pa.Field(isin=["match", "possible", "must_link", "cannot_link"])
    decided_by: Series[str] = pa.Field(isin=["matcher", "human"])
    blocked_by: Series[str] = pa.Field(nullable=True)  # the blocking key that paired them (empty: a human decision)
    merged: Series[bool]  # the two records ended in one client
    client_key_a: Series[str]
    client_key_b: Series[str]

    @pa.dataframe_check(error="(record_a, record_b) is the grain: ordered and unique")
    def pairs_are_ordered_and_unique(cls, df: pd.DataFrame) -> pd.Series:
        return (df["record_a"] < df["record_b"]) & ~df.duplicated(["record_a", "record_b"], keep=False)


class ClientKeyRetirements(_StrictModel):
    """Client keys retired when their cluster merged into an older one. Grain: one row per retired key."""

    retired_client_key: Series[str] = pa.Field(unique=True)
    client_key: Series[str]  # the key that survived the merge (it may itself be retired later: follow the chain)
    retired_at: Series[UtcTimestamp]
    reason: Series[str]


class TerritoryDim(_StrictModel):
    """One row per territory ever issued (territory_id); ids are never renamed or reused."""

    # geographic ids (NOR_INS, NOR_INS_2), UNASSIGNED, or an overlay's code (FOUNDATIONS)
    territory_id: Series[str] = pa.Field(unique=True, str_matches=r"^([A-Z0-9]{1,3}_[A-Z0-9]{1,3}(_\d+)?|UNASSIGNED|[A-Z0-9_]+)$")
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    overlay: Series[str] = pa.Field(nullable=True)  # specialist (overlay) territories: the code; else empty
    owner_role: Series[str] = pa.Field(str_length={"min_value": 1})
    issued_at: Series[UtcTimestamp]

    @pa.dataframe_check(error="a territory is a unique (region, segment), an overlay, or UNASSIGNED: exactly one of them")
    def region_segment_identify_territory(cls, df: pd.DataFrame) -> pd.Series:
        unassigned = df["territory_id"] == UNASSIGNED_TERRITORY_ID
        both_set = df["region"].notna() & df["segment"].notna()
        overlay = df["overlay"].notna() & df["region"].isna() & df["segment"].isna()
        duplicated = df.duplicated(["region", "segment"], keep=False) & both_set
        return (unassigned.astype(int) + both_set.astype(int) + overlay.astype(int) == 1) & ~duplicated


class TerritoryRules(_StrictModel):
    """The rules in force. Grain: one row per rule of the rules file (tier, territory rule, override, ...)."""

    kind: Series[str] = pa.Field(isin=["segmentation tier", "territory rule", "override", "exclusion", "secondary", "overlay"])
    rule_id: Series[str] = pa.Field(unique=True)
    priority: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    criteria: Series[str] = pa.Field(nullable=True)  # the `when` as JSON
    target: Series[str] = pa.Field(nullable=True)
    rules_version: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{12}$")


class AssignmentsFact(_StrictModel):
    """One row per (client, territory, assignment type): which territory and advisor own each client."""

    client_key: Series[str]
    territory_id: Series[str]
    primary_advisor_email: Series[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    assignment_type: Series[str] = pa.Field(isin=ASSIGNMENT_TYPES)
    is_current: Series[bool]
    assigned_by: Series[str] = pa.Field(
        str_length={"min_value": 1}
    )  # rule id, override:<client_key>, parent_org, overlay id, fallback
    segment_rule: Series[str] = pa.Field(nullable=True)  # the tier that derived the segment (empty: the source's segment)
    advisor_reason: Series[str] = pa.Field(nullable=True, isin=ADVISOR_REASONS)  # why this advisor (PRIMARY rows)
    rules_version: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{12}$")  # content hash of the rules file

    @pa.dataframe_check(error="(client_key, territory_id, assignment_type) is the grain and must be unique")
    def grain_is_unique(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["client_key", "territory_id", "assignment_type"], keep=False)


class ClientDimHistory(_StrictModel):
    """Every version of every client. Grain: one row per (client_key, valid_from)."""

    client_key: Series[str]
    client_name: Series[str]
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    parent_org: Series[str] = pa.Field(nullable=True)
    primary_advisor_email: Series[str] = pa.Field(nullable=True)
    is_active: Series[bool]
    aum_usd: Series[float] = pa.Field(nullable=True)
    business_type: Series[str] = pa.Field(nullable=True)
    source_system: Series[str]
    source_record_id: Series[str]
    source_modified_at: Series[UtcTimestamp]
    data_issues: Series[str] = pa.Field(nullable=True)
    # SCD Type 2 bookkeeping (crm_territory.logic.history.scd2)
    valid_from: Series[UtcTimestamp]
    valid_to: Series[UtcTimestamp] = pa.Field(nullable=True)  # empty while the version is open
    is_current: Series[bool]
    change_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{16}$")


class AssignmentsFactHistory(_StrictModel):
    """Every version of every assignment. Grain: one row per (client_key, territory_id, assignment_type, valid_from)."""

    client_key: Series[str]
    territory_id: Series[str]
    primary_advisor_email: Series[str] = pa.Field(nullable=True)
    assignment_type: Series[str] = pa.Field(isin=ASSIGNMENT_TYPES)
    assignment_is_current: Series[bool]  # the fact's is_current (client active); is_current here is the version's
    assigned_by: Series[str]
    segment_rule: Series[str] = pa.Field(nullable=True)
    advisor_reason: Series[str] = pa.Field(nullable=True)
    rules_version: Series[str]
    # SCD Type 2 bookkeeping (crm_territory.logic.history.scd2)
    valid_from: Series[UtcTimestamp]
    valid_to: Series[UtcTimestamp] = pa.Field(nullable=True)  # empty while the version is open
    is_current: Series[bool]
    change_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{16}$")


class AssignmentsPreview(_StrictModel):
    """What activating the candidate rules would change. Grain: one row per client whose territory or advisor would change."""

    client_key: Series[str] = pa.Field(unique=True)
    territory_before: Series[str] = pa.Field(nullable=True)
    territory_after: Series[str]
    advisor_before: Series[str] = pa.Field(nullable=True)
    advisor_after: Series[str] = pa.Field(nullable=True)
    assigned_by_after: Series[str]
    change: Series[str] = pa.Field(isin=["territory", "advisor", "territory and advisor"])
    candidate_version: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{12}$")


OWNERS = ("team:revops-data",)


@dataclass(frozen=True)
class TableSpec:
    """Everything the engine knows about one table, in one place: the asset, its storage and its UI come from here.

    The model gives the columns (names, types, descriptions, rules); the rest says where the table
    lives and how Dagster shows it. ``crm_territory.wiring.assets`` turns a spec into the asset's
    decorator arguments, so a new table is one model, one spec and one function.
    """

    name: str
    model: type[pa.DataFrameModel]
    group: str  # the Dagster asset group: the domain (sources, matching, placement, rules, history)
    layer: str  # raw | core | quarantine: the folder under CRM_DATA_DIR
    grain: str  # what one row is
    warehouse_schema: str  # RAW | CORE: the schema in Snowflake (the seed's layers)
    warehouse_table: str  # the table in that schema
    kinds: frozenset[str] = frozenset({"pandas"})
    # Bump when the asset's output changes for the same input (Dagster then flags it and what is below as stale).
    code_version: str = "1"

    @property
    def warehouse_name(self) -> str:
        return f"{self.warehouse_schema}.{self.warehouse_table}"

    @property
    def description(self) -> str:
        """The model's docstring (what the table is) and its grain."""
        what = inspect.getdoc(self.model) or self.name
        return f"{what}\n\nGrain: {self.grain}"


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            "crm_api_clients", CrmApiClients, "sources", "raw",
            "one row per CRM client_id (records without an id kept as sent).",
            "RAW", "CRM_API_CLIENTS", frozenset({"api", "pandas"}),
        ),
        TableSpec(
            "crm_api_advisors", CrmApiAdvisors, "sources", "raw",
            "one row per advisor record sent by the CRM API's /advisors.",
            "RAW", "CRM_API_ADVISORS", frozenset({"api", "pandas"}),
        ),
        TableSpec(
            "raw_clients", RawClients, "sources", "raw",
            "one row per source row (source_system, source_file or page, source_row); a client updated by several drops has several rows.",
            "RAW", "CLIENTS", frozenset({"pandas", "csv"}),
        ),  # the seed's RAW.CLIENTS
        TableSpec(
            "ingest_manifest", IngestManifest, "sources", "raw",
            "one row per source batch of the run (each landing file, the CRM API snapshot).",
            "RAW", "INGEST_MANIFEST",
        ),
        TableSpec(
            "quarantined_clients", QuarantinedClients, "sources", "quarantine",
            "one row per quarantined source row.",
            "RAW", "QUARANTINED_CLIENTS",
        ),
        TableSpec(
            "territory_rules", TerritoryRules, "rules", "core",
            "one row per rule of the rules file (tier, territory rule, override, exclusion, secondary, overlay).",
            "CORE", "TERRITORY_RULES", frozenset({"yaml", "pandas"}),
        ),
        TableSpec(
            "client_xref", ClientXref, "matching", "core",
            "one row per source record (source_system, source_record_id).",
            "CORE", "CLIENT_XREF",
        ),
        TableSpec(
            "client_matches", ClientMatches, "matching", "core",
            "one row per record pair (record_a < record_b) the matcher scored as a match or a possible match, or a human decided.",
            "CORE", "CLIENT_MATCHES",
        ),
        TableSpec(
            "client_key_retirements", ClientKeyRetirements, "matching", "core",
            "one row per retired client key (kept across runs).",
            "CORE", "CLIENT_KEY_RETIREMENTS",
        ),
        TableSpec(
            "client_dim", ClientDim, "matching", "core",
            "one row per client (client_key): a real organisation, however many source records it has.",
            "CORE", "CLIENT_DIM",
        ),
        TableSpec(
            "territory_dim", TerritoryDim, "placement", "core",
            "one row per territory ever issued (territory_id), plus UNASSIGNED.",
            "CORE", "TERRITORY_DIM",
        ),
        TableSpec(
            "advisor_dim", AdvisorDim, "placement", "core",
            "one row per advisor e-mail.",
            "CORE", "ADVISOR_DIM",
        ),
        TableSpec(
            "assignments_fact", AssignmentsFact, "placement", "core",
            "one row per (client_key, territory_id, assignment_type).",
            "CORE", "ASSIGNMENTS_FACT",
        ),
        TableSpec(
            "client_dim_history", ClientDimHistory, "history", "core",
            "one row per (client_key, valid_from): a version of a client.",
            "CORE", "CLIENT_DIM_HISTORY",
        ),
        TableSpec(
            "assignments_fact_history", AssignmentsFactHistory, "history", "core",
            "one row per (client_key, territory_id, assignment_type, valid_from): a version of an assignment.",
            "CORE", "ASSIGNMENTS_FACT_HISTORY",
        ),
        TableSpec(
            "assignments_preview", AssignmentsPreview, "rules", "core",
            "one row per client whose territory or advisor would change if the candidate rules were activated.",
            "CORE", "ASSIGNMENTS_PREVIEW",
        ),
    ]
}  # fmt: skip


# Required columns added after tables were first written, with the value every older row holds. A
# reader fills them in, so a table written by an earlier version still loads (the upgrade path); on
# Snowflake the DDL adds the column with this default (infra/snowflake/tables.sql).
COLUMN_DEFAULTS: dict[str, dict[str, object]] = {
    "client_dim": {"source_record_count": 1},  # before entity resolution every client was one record
}


def columns_of(model: type[pa.DataFrameModel]) -> list[str]:
    """The model's columns, in order."""
    return list(model.to_schema().columns)


def empty_frame(model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """A zero-row frame with exactly the model's columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in model_dtypes(model).items()})


def model_dtypes(model: type[pa.DataFrameModel]) -> dict[str, object]:
    """Column -> pandas dtype, in the model's order."""
    return {name: _pandas_dtype(col.dtype) for name, col in model.to_schema().columns.items()}


def conform(df: pd.DataFrame, model: type[pa.DataFrameModel], defaults: dict[str, object] | None = None) -> pd.DataFrame:
    """Give a frame read from a store the model's columns, order and dtypes (missing values as None/NA).

    For stores that do not keep pandas dtypes (a warehouse gives NUMBER back as float, column names
    in upper case, timestamps in the session's zone).
    """
    out = df.rename(columns=str.lower)
    dtypes = model_dtypes(model)
    for column, value in (defaults or {}).items():
        out[column] = out[column].fillna(value) if column in out.columns else value
    missing = [c for c in dtypes if c not in out.columns]
    if missing:
        raise ValueError(f"{model.__name__}: the stored table lacks column(s) {missing}")
    out = out[list(dtypes)].reset_index(drop=True)
    for col, dtype in dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = pd.to_datetime(out[col], utc=True).astype(dtype)
        elif str(dtype) == "float64":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        elif dtype == object:
            values = out[col].astype(object)
            out[col] = values.where(values.notna(), None)
        else:
            out[col] = out[col].astype(dtype)
    return out


def _pandas_dtype(pandera_dtype) -> object:
    dtype = pandera_dtype.type
    # pandera's str is numpy's unicode type; pandas stores text as object
    return object if getattr(dtype, "kind", None) == "U" else dtype
