"""One Pandera model per table: the single source of column names, types and rules.

The CSV reader's dtypes (``crm_territory.storage``) and the blocking asset checks
(``crm_territory.defs.checks``) derive from these models; the warehouse DDL
(``infra/snowflake/tables.sql``) is written by hand and tested against them column by column.
``TABLES`` says where each table lives (its layer: raw, core or quarantine).
"""

from __future__ import annotations

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
    data_issues: Series[str] = pa.Field(nullable=True)


class TerritoryDim(_StrictModel):
    """One row per territory ever issued (territory_id); ids are never renamed or reused."""

    territory_id: Series[str] = pa.Field(unique=True, str_matches=r"^([A-Z0-9]{1,3}_[A-Z0-9]{1,3}(_\d+)?|UNASSIGNED)$")
    region: Series[str] = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(nullable=True)
    owner_role: Series[str] = pa.Field(str_length={"min_value": 1})
    issued_at: Series[UtcTimestamp]

    @pa.dataframe_check(error="region and segment are empty only for the UNASSIGNED territory, and unique")
    def region_segment_identify_territory(cls, df: pd.DataFrame) -> pd.Series:
        unassigned = df["territory_id"] == UNASSIGNED_TERRITORY_ID
        both_set = df["region"].notna() & df["segment"].notna()
        duplicated = df.duplicated(["region", "segment"], keep=False) & both_set
        return (unassigned ^ both_set) & ~duplicated


class AssignmentsFact(_StrictModel):
    """One row per (client, territory, assignment type): which territory and advisor own each client."""

    client_key: Series[str]
    territory_id: Series[str]
    primary_advisor_email: Series[str] = pa.Field(nullable=True, str_matches=EMAIL_PATTERN)
    assignment_type: Series[str] = pa.Field(isin=ASSIGNMENT_TYPES)
    is_current: Series[bool]

    @pa.dataframe_check(error="(client_key, territory_id, assignment_type) is the grain and must be unique")
    def grain_is_unique(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["client_key", "territory_id", "assignment_type"], keep=False)


@dataclass(frozen=True)
class TableSpec:
    """Where a table lives and which model describes it."""

    name: str
    layer: str  # raw | core | quarantine: the folder under CRM_DATA_DIR
    model: type[pa.DataFrameModel]
    warehouse_schema: str  # RAW | CORE: the schema in Snowflake (the seed's layers)
    warehouse_table: str  # the table in that schema

    @property
    def warehouse_name(self) -> str:
        return f"{self.warehouse_schema}.{self.warehouse_table}"


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec("crm_api_clients", "raw", CrmApiClients, "RAW", "CRM_API_CLIENTS"),
        TableSpec("crm_api_advisors", "raw", CrmApiAdvisors, "RAW", "CRM_API_ADVISORS"),
        TableSpec("raw_clients", "raw", RawClients, "RAW", "CLIENTS"),  # the seed's RAW.CLIENTS
        TableSpec("ingest_manifest", "raw", IngestManifest, "RAW", "INGEST_MANIFEST"),
        TableSpec("quarantined_clients", "quarantine", QuarantinedClients, "RAW", "QUARANTINED_CLIENTS"),
        TableSpec("client_dim", "core", ClientDim, "CORE", "CLIENT_DIM"),
        TableSpec("territory_dim", "core", TerritoryDim, "CORE", "TERRITORY_DIM"),
        TableSpec("advisor_dim", "core", AdvisorDim, "CORE", "ADVISOR_DIM"),
        TableSpec("assignments_fact", "core", AssignmentsFact, "CORE", "ASSIGNMENTS_FACT"),
    ]
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


def conform(df: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """Give a frame read from a store the model's columns, order and dtypes (missing values as None/NA).

    For stores that do not keep pandas dtypes (a warehouse gives NUMBER back as float, column names
    in upper case, timestamps in the session's zone).
    """
    out = df.rename(columns=str.lower)
    dtypes = model_dtypes(model)
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
