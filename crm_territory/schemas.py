"""One Pandera model per table: the single source of column names, types and rules.

The CSV reader's dtypes (``crm_territory.storage``) and the blocking asset checks
(``crm_territory.defs.checks``) derive from these models; the warehouse DDL
(``infra/snowflake/tables.sql``) is written by hand and tested against them column by column.
``TABLES`` says where each table lives (its layer: raw, core or quarantine).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, TypeAlias

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

UtcTimestamp: TypeAlias = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]

# A pragmatic e-mail shape: one "@", no spaces, a dot in the domain. Deliverability is not our job.
EMAIL_PATTERN = r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
# Source identifiers: letters, digits, '-', '_' and '.', at most 64 characters.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

SOURCE_SYSTEMS = ["crm_api", "csv_drop"]  # the built-in sources: the CRM API, and landing files in the seed's layout
# Any source: a built-in one or the source_system a source layout declares (data/sources/<source>.yaml; a lower-case
# name: the record key is <source_system>:<client_id>, so no ':'). Kept in step with logic/ingest/layouts.py.
SOURCE_SYSTEM_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
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
    """The CRM API's client book as last pulled: every record as sent, upserted by client_id on each incremental pull."""

    client_id: Series[str] = pa.Field(
        nullable=True, description="The CRM's id of the client, as sent (text). Empty only for records the API sent without one."
    )
    client_name: Series[str] = pa.Field(
        nullable=True, description="The organisation's name exactly as the CRM sent it (trimmed, and judged, in raw_clients)."
    )
    region: Series[str] = pa.Field(
        nullable=True,
        description="Region as the source spells it (mapped by reference/region_aliases.csv in client_dim). Empty: none.",
    )
    segment: Series[str] = pa.Field(
        nullable=True,
        description="Segment as the source spells it (mapped by reference/segment_aliases.csv in client_dim). Empty: none.",
    )
    parent_org: Series[str] = pa.Field(
        nullable=True, description="Name of the parent organisation (account family), as sent. Empty: no parent."
    )
    advisor_email: Series[str] = pa.Field(
        nullable=True, description="The owning advisor's e-mail as sent (validated and lower-cased in client_dim)."
    )
    status: Series[str] = pa.Field(
        nullable=True, description="active or inactive, as the CRM sent it (judged, or quarantined, in raw_clients)."
    )
    aum_usd: Series[str] = pa.Field(
        nullable=True, description="Assets under management in USD, as sent (text); client_dim parses it."
    )
    business_type: Series[str] = pa.Field(
        nullable=True, description="Kind of client (Family Office, Foundation, Trust, ...) as sent; rules may segment on it."
    )
    updated_at: Series[str] = pa.Field(
        nullable=True, description="When the CRM last changed the record (ISO 8601, as sent); drives the incremental pull."
    )
    crm_owner_email: Series[str] = pa.Field(
        nullable=True,
        description="The CRM's own assignment: the record's owner_email as sent (what the write-back plan compares "
        "with the PRIMARY advisor). Empty: no owner, or a snapshot pulled before the write-back fields were kept.",
    )
    crm_territory_id: Series[str] = pa.Field(
        nullable=True,
        description="The CRM's own assignment: the record's territory_id as sent (what the write-back plan compares "
        "with the PRIMARY territory). Empty: none, or a snapshot pulled before the write-back fields were kept.",
    )
    crm_assignment_version: Series[str] = pa.Field(
        nullable=True,
        description="The CRM's assignment_version of the record as sent (text): +1 on every change of owner or "
        "territory. Empty: a snapshot pulled before the write-back fields were kept.",
    )
    crm_etag: Series[str] = pa.Field(
        nullable=True,
        description="The record's etag (version stamp) as sent by the pull that last brought it: the write-back plan "
        "sends it as if_match, so a record changed in the CRM since is a conflict. Empty: pulled before the "
        "write-back fields were kept (a full_refresh pull reads it).",
    )
    source_page: Series[pd.Int64Dtype] = pa.Field(
        ge=1, description="The CRM API page (1 = first) the record came from, in the pull that last sent it."
    )
    pulled_at: Series[UtcTimestamp] = pa.Field(
        description="When the pull that last sent this record ran (UTC); each incremental pull upserts by client_id."
    )


class CrmApiAdvisors(_StrictModel):
    """The CRM API's advisor roster as last pulled: who can own clients where, and how many; replaced whole on every pull."""

    advisor_email: Series[str] = pa.Field(
        nullable=True,
        description="The advisor's e-mail as the CRM sent it (lower-cased and validated in advisor_dim; invalid ones dropped).",
    )
    advisor_name: Series[str] = pa.Field(nullable=True, description="The advisor's name as the CRM roster gives it.")
    regions: Series[str] = pa.Field(nullable=True, description="Regions the advisor covers, ';'-joined, as the CRM spells them.")
    segments: Series[str] = pa.Field(
        nullable=True, description="Segments the advisor covers, ';'-joined, as the CRM spells them."
    )
    capacity: Series[pd.Int64Dtype] = pa.Field(
        nullable=True,
        description="How many PRIMARY clients the advisor can own, as sent. Empty: none sent or not a number (0 in advisor_dim).",
    )
    active: Series[bool] = pa.Field(description="Whether the advisor can be given clients (false when the CRM sent no flag).")
    pulled_at: Series[UtcTimestamp] = pa.Field(description="When this pull ran (UTC); every pull replaces the whole roster.")


class AdvisorDim(_StrictModel):
    """Advisor dimension: each advisor's territories (ids), capacity and whether they take clients."""

    advisor_email: Series[str] = pa.Field(
        unique=True,
        str_matches=EMAIL_PATTERN,
        description="The advisor's e-mail, trimmed, lower-cased and validated (roster rows without a valid one are dropped).",
    )
    advisor_name: Series[str] = pa.Field(nullable=True, description="The advisor's name as the CRM roster gives it.")
    territories: Series[str] = pa.Field(
        nullable=True,
        description="Territory ids the advisor serves, ';'-joined, from the roster's regions x segments. Empty: none issued.",
    )
    capacity: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="How many PRIMARY clients the advisor can own; 0 when the roster gives none or a negative number."
    )
    active: Series[bool] = pa.Field(description="Whether the advisor can be given clients.")


class RawClients(_StrictModel):
    """Every usable source row with provenance, from the CRM API snapshot and the drops; a client may have several versions."""

    client_id: Series[str] = pa.Field(
        str_matches=CLIENT_ID_PATTERN,
        description="The client's id in its source system, as sent (text: leading zeros kept; letters, digits, '.', '-', '_').",
    )
    client_name: Series[str] = pa.Field(
        str_length={"min_value": 1}, description="The organisation's name as the source spells it (trimmed)."
    )
    region: Series[str] = pa.Field(
        nullable=True,
        description="Region as the source spells it (mapped by reference/region_aliases.csv in client_dim). Empty: none.",
    )
    segment: Series[str] = pa.Field(
        nullable=True,
        description="Segment as the source spells it (mapped by reference/segment_aliases.csv in client_dim). Empty: none.",
    )
    parent_org: Series[str] = pa.Field(
        nullable=True, description="Name of the parent organisation (account family), as sent. Empty: no parent."
    )
    advisor_email: Series[str] = pa.Field(
        nullable=True, description="The owning advisor's e-mail as sent (validated and lower-cased in client_dim)."
    )
    status: Series[str] = pa.Field(
        nullable=True,
        isin=["active", "inactive"],
        description="active or inactive, lower-cased from the source. Empty: not given (the client keeps its last known status).",
    )
    aum_usd: Series[str] = pa.Field(
        nullable=True, description="Assets under management in USD, as sent (text); client_dim parses it."
    )
    business_type: Series[str] = pa.Field(
        nullable=True, description="Kind of client (Family Office, Foundation, Trust, ...) as sent; rules may segment on it."
    )
    # Kept when a source layout maps them (data/sources/); empty for the CRM API and the seed's layout. Matching
    # compares tax_id, date_of_birth, postal_code, phone, address and the domain of email_domain / website
    # (crm_territory/logic/matching/fields.py); not yet carried into client_dim.
    address: Series[str] = pa.Field(nullable=True, description="Street address as the source gives it. Empty: none given.")
    postal_code: Series[str] = pa.Field(nullable=True, description="Postal or ZIP code, as text (leading zeros kept).")
    city: Series[str] = pa.Field(nullable=True, description="City as the source spells it.")
    country: Series[str] = pa.Field(
        nullable=True, description="Country as the source spells it (or as its layout's map gives it)."
    )
    phone: Series[str] = pa.Field(nullable=True, description="Phone number as the source writes it.")
    website: Series[str] = pa.Field(nullable=True, description="Website or web domain as the source gives it.")
    email_domain: Series[str] = pa.Field(nullable=True, description="The client's e-mail domain, when the source gives one.")
    tax_id: Series[str] = pa.Field(nullable=True, description="Tax or company registration id, as text, as sent.")
    date_of_birth: Series[str] = pa.Field(
        nullable=True, description="Date of birth of an individual client, YYYY-MM-DD (parsed by its layout's date_format)."
    )
    revenue_usd: Series[str] = pa.Field(
        nullable=True,
        description="Annual revenue in USD as plain decimal text (separators and symbols dropped, times the layout's unit); "
        "a value that is not a number is kept as sent.",
    )
    last_modified_at: Series[UtcTimestamp] = pa.Field(
        nullable=True,
        description="When the source says it last changed the record (a layout's last-modified column, UTC). Empty: not given.",
    )
    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="Where the row came from: crm_api (the CRM API), csv_drop (a landing file in the seed's layout) or "
        "the source_system of the source layout (data/sources/) that read its file.",
    )
    source_record_id: Series[str] = pa.Field(
        description="The record's id in its source (client_id): with source_system, the record key."
    )
    source_file: Series[str] = pa.Field(nullable=True, description="The landing file the row came from. Empty for the CRM API.")
    source_row: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="Row number in the file, 1 = first row after the header. Empty for the CRM API."
    )
    source_page: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="The CRM API page the record came from (1 = first). Empty for drops."
    )
    source_modified_at: Series[UtcTimestamp] = pa.Field(
        description="When the source last changed the record (UTC): a drop's file mtime (to the second), the API's updated_at."
    )
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the run that read the row started (UTC).")


class QuarantinedClients(_StrictModel):
    """Source rows that could not be used, with where they came from, why, and what they held: nothing is lost."""

    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="Where the row came from: crm_api (the CRM API), csv_drop (a landing file in the seed's layout) or "
        "the source_system of the source layout (data/sources/) that read its file.",
    )
    source_file: Series[str] = pa.Field(nullable=True, description="The landing file the row came from. Empty for the CRM API.")
    source_row: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="Row number in the file, 1 = first row after the header. Empty for the CRM API."
    )
    source_page: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="The CRM API page the record came from (1 = first). Empty for drops."
    )
    source_record_id: Series[str] = pa.Field(
        nullable=True, description="The row's client_id as sent. Empty: the row had none, or was malformed."
    )
    reason: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="Why the row could not be used, '; '-joined: missing or invalid client_id, unknown status, malformed row...",
    )
    original_values: Series[str] = pa.Field(
        description="The row's source values as a JSON object (a malformed row: its raw_text), so it can be fixed at the source."
    )
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the run that read the row started (UTC).")


class IngestManifest(_StrictModel):
    """What each run ingested: per source batch, rows read, loaded and quarantined, or why a file was rejected."""

    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="crm_api (the API snapshot), csv_drop (a landing file in the seed's layout) or a source layout's source_system.",
    )
    batch: Series[str] = pa.Field(
        unique=True, description="The source batch: a landing file's name, or crm_api:/clients for the API snapshot."
    )
    size_bytes: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=0, description="The file's size in bytes. Empty for the API snapshot."
    )
    modified_at: Series[UtcTimestamp] = pa.Field(
        nullable=True,
        description="A file's modification time (UTC, to the second); for the API, its newest loaded record's updated_at.",
    )
    status: Series[str] = pa.Field(
        isin=["loaded", "rejected", "deferred"],
        description="loaded (its rows were read), rejected (the whole file; message says why) or deferred (still being "
        "written: not read this run, its previous version kept; message says why).",
    )
    rows_read: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="Data rows read from the batch (header aside): rows_loaded + rows_quarantined."
    )
    rows_loaded: Series[pd.Int64Dtype] = pa.Field(ge=0, description="Rows that reached raw_clients.")
    rows_quarantined: Series[pd.Int64Dtype] = pa.Field(ge=0, description="Rows that went to quarantined_clients.")
    message: Series[str] = pa.Field(
        nullable=True, description="Why a file was rejected, or a warning about it. Empty when all is well."
    )
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the run that read the batch started (UTC).")


class ClientDim(_StrictModel):
    """Client dimension: the golden record of each real organisation across sources, canonicalised."""

    client_key: Series[str] = pa.Field(
        unique=True,
        description="Stable client id: the record key (source_system:client_id) of its earliest record at issue; never reused.",
    )
    client_name: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="The organisation's name from the surviving record (a usable value first, CRM over drops, newest).",
    )
    region: Series[str] = pa.Field(
        nullable=True,
        description="Canonical region (reference/region_aliases.csv). Empty: unknown spelling or none (see data_issues).",
    )
    segment: Series[str] = pa.Field(
        nullable=True,
        description="Canonical segment (reference/segment_aliases.csv). Empty: unknown spelling or none (see data_issues).",
    )
    parent_org: Series[str] = pa.Field(
        nullable=True, description="Name of the parent organisation (account family), as sent. Empty: no parent."
    )
    primary_advisor_email: Series[str] = pa.Field(
        nullable=True,
        str_matches=EMAIL_PATTERN,
        description="The owning advisor's e-mail, lower-cased and validated. Empty: none or invalid (see data_issues).",
    )
    is_active: Series[bool] = pa.Field(
        description="Whether the client is active: the most recent status a source gave; active if none ever did."
    )
    aum_usd: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        description="Assets under management in USD, from the most recent record. Empty: none or invalid (see data_issues).",
    )
    business_type: Series[str] = pa.Field(
        nullable=True, description="Kind of client (Family Office, Foundation, Trust, ...) as sent; rules may segment on it."
    )
    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="The source of the client's most recently updated record (crm_api, csv_drop or a source layout's).",
    )
    source_record_id: Series[str] = pa.Field(description="That record's id in its source (with source_system, its record key).")
    source_modified_at: Series[UtcTimestamp] = pa.Field(
        description="When the source last changed that record (UTC): the file's mtime for drops, updated_at for the API."
    )
    source_record_count: Series[pd.Int64Dtype] = pa.Field(
        ge=1, description="How many source records were merged into this client (client_xref lists them)."
    )
    data_issues: Series[str] = pa.Field(
        nullable=True,
        description="What is odd about the client, '; '-joined (unknown region, invalid advisor e-mail, ...). Empty: nothing.",
    )


class ClientXref(_StrictModel):
    """Which client each source record belongs to, how it was linked, and why a name could not be matched."""

    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="The record's source: crm_api, csv_drop or a source layout's source_system.",
    )
    source_record_id: Series[str] = pa.Field(
        str_matches=CLIENT_ID_PATTERN,
        description="The record's id in its source (client_id): with source_system, the record key.",
    )
    client_key: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="The client this record belongs to (its stable client_key in client_dim).",
    )
    records_in_client: Series[pd.Int64Dtype] = pa.Field(
        ge=1, description="How many source records share this record's client_key."
    )
    linked_by: Series[str] = pa.Field(
        isin=["only record", "matched", "human decision"],
        description="How the record got its client_key: only record, matched (by the matcher) or human decision.",
    )
    unmatchable_reason: Series[str] = pa.Field(
        nullable=True,
        description="Why the name cannot be compared (empty, too short, too long, not Latin); such a record stays alone.",
    )
    client_key_issued_at: Series[UtcTimestamp] = pa.Field(description="When the client_key was first issued (UTC).")
    first_seen_at: Series[UtcTimestamp] = pa.Field(description="When this source record was first seen by a run (UTC).")

    @pa.dataframe_check(error="a source record appears in client_xref more than once")
    def one_row_per_record(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["source_system", "source_record_id"], keep=False)


class ClientMatches(_StrictModel):
    """Scored record pairs worth a look, for review: each field's agreement, the score and the decision."""

    record_a: Series[str] = pa.Field(
        description="Record key (source_system:client_id) of the first record of the pair (record_a < record_b)."
    )
    record_b: Series[str] = pa.Field(description="Record key of the second record of the pair.")
    client_name_a: Series[str] = pa.Field(nullable=True, description="record_a's name, for review.")
    client_name_b: Series[str] = pa.Field(nullable=True, description="record_b's name, for review.")
    name_score: Series[float] = pa.Field(
        ge=0, le=100, description="Name similarity 0-100: the better of rapidfuzz ratio and token_sort_ratio on normalised names."
    )
    name_difference: Series[str] = pa.Field(
        isin=["same words", "typo or abbreviation", "different words", "different word count", "not compared (unmatchable name)"],
        description="Word-by-word comparison: same words, typo or abbreviation, different words or word count, or not compared.",
    )
    name_points: Series[float] = pa.Field(
        ge=0,
        le=100,
        description="What the names added to score: name_score, credited at least 95 when the names agree word by word (same words, a typo or an abbreviation).",
    )
    region_agreement: Series[str] = pa.Field(
        isin=["agree", "disagree", "unknown"],
        description="Whether the two records' canonical regions agree, disagree, or one is unknown.",
    )
    region_points: Series[float] = pa.Field(
        description="Points the regions added to score: the agree or disagree points of match_model (estimated, or the hand-set scoring.FIELD_WEIGHTS); 0 when either record lacks it."
    )
    parent_org_agreement: Series[str] = pa.Field(
        isin=["agree", "disagree", "unknown"],
        description="Whether the parent organisations agree (fuzzy), disagree, or one is unknown.",
    )
    parent_org_points: Series[float] = pa.Field(
        description="Points the parent organisations added to score: the agree or disagree points of match_model (estimated, or the hand-set scoring.FIELD_WEIGHTS); 0 when either record lacks it."
    )
    advisor_email_agreement: Series[str] = pa.Field(
        isin=["agree", "disagree", "unknown"], description="Whether the advisor e-mails agree, disagree, or one is unknown."
    )
    advisor_email_points: Series[float] = pa.Field(
        description="Points the advisor e-mails added to score: the agree or disagree points of match_model (estimated, or the hand-set scoring.FIELD_WEIGHTS); 0 when either record lacks it."
    )
    advisor_domain_agreement: Series[str] = pa.Field(
        isin=["agree", "disagree", "unknown"],
        description="Whether the advisor e-mail domains agree, disagree, or one is unknown.",
    )
    advisor_domain_points: Series[float] = pa.Field(
        description="Points the advisor e-mail domains added to score: the agree or disagree points of match_model (estimated, or the hand-set scoring.FIELD_WEIGHTS); 0 when either record lacks it."
    )
    tax_id_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Tax or registration id (digits only): exact, close (typo: one digit edit) or different. Empty: not on both records.",
    )
    tax_id_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the tax_id level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    date_of_birth_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Date of birth: exact, close (one digit edit, day and month swapped, or at most 3 days apart) or different. Empty: not on both records.",
    )
    date_of_birth_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the date_of_birth level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    postal_code_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Postcode (upper case, no spaces): exact, close (one edit or the same first 3 characters) or different. Empty: not on both records.",
    )
    postal_code_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the postal_code level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    domain_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Client e-mail domain, else website host: exact, close (one edit) or different. Empty: not on both records.",
    )
    domain_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the domain level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    phone_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Phone (digits only): exact, close (one edit or the same last 9 digits) or different. Empty: not on both records.",
    )
    phone_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the phone level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    address_level: Series[str] = pa.Field(
        nullable=True,
        isin=["exact", "close", "different"],
        description="Street address (lower case, punctuation as spaces): exact, close (the same words give or take one, or nearly the same letters: similarity 85+) or different. Empty: not on both records.",
    )
    address_points: Series[float] = pa.Field(
        nullable=True,
        description="Points the address level added to the score: log2(m/u) x 4.5 (u of exact: the value's share of the book). Empty: not compared.",
    )
    field_points: Series[float] = pa.Field(
        nullable=True,
        description="Sum of the *_points columns (Fellegi-Sunter weights of the optional fields), included in score. Empty: none compared.",
    )
    score: Series[float] = pa.Field(
        description="The match weight as a sum of parts: name_points + region_points + parent_org_points + advisor_email_points + advisor_domain_points + field_points. match: 90+ and agreeing names or the same tax id or date of birth."
    )
    decision: Series[str] = pa.Field(
        isin=["match", "possible", "must_link", "cannot_link"],
        description="match or possible (the matcher), must_link or cannot_link (a human, in decisions.csv).",
    )
    decided_by: Series[str] = pa.Field(isin=["matcher", "human"], description="matcher, or human (data/matching/decisions.csv).")
    blocked_by: Series[str] = pa.Field(
        nullable=True,
        description="The blocking key that made the pair a candidate (same name, same first word, ...). Empty: a human decision.",
    )
    merged: Series[bool] = pa.Field(description="Whether the two records ended in one client.")
    client_key_a: Series[str] = pa.Field(description="record_a's client_key after this run.")
    client_key_b: Series[str] = pa.Field(description="record_b's client_key after this run.")

    @pa.dataframe_check(error="(record_a, record_b) is the grain: ordered and unique")
    def pairs_are_ordered_and_unique(cls, df: pd.DataFrame) -> pd.Series:
        return (df["record_a"] < df["record_b"]) & ~df.duplicated(["record_a", "record_b"], keep=False)


class MatchModel(_StrictModel):
    """The Fellegi–Sunter model the matcher used: per field and level m, u, bits and points, where m came from
    (prior, EM, the human decisions, or the hand-set points), the training sample, convergence and the model version."""

    field: Series[str] = pa.Field(
        isin=[
            "tax_id",
            "date_of_birth",
            "postal_code",
            "domain",
            "phone",
            "address",
            "region",
            "parent_org",
            "advisor_email",
            "advisor_domain",
        ],
        description="The field compared: an optional field (tax_id ... phone, address) or one of the CRM's own (region, parent_org, advisor_email, advisor_domain).",
    )
    level: Series[str] = pa.Field(
        isin=["exact", "close", "different", "agree", "disagree"],
        description="The comparison level: exact, close or different (optional fields); agree or disagree (the CRM's fields).",
    )
    m: Series[float] = pa.Field(gt=0, le=1, description="m in force: the chance two records of one client are at this level.")
    m_prior: Series[float] = pa.Field(
        gt=0, le=1, description="The prior m (fields.py or data/matching/comparisons.yaml): EM's start and fallback."
    )
    m_source: Series[str] = pa.Field(
        isin=["prior", "estimated", "human decisions", "hand-set"],
        description="prior; estimated by EM from the candidate pairs; human decisions: the must-link pairs of decisions.csv (when at least min_decisions have the field); hand-set: a CRM field EM could not estimate keeps the points of scoring.FIELD_WEIGHTS.",
    )
    m_note: Series[str] = pa.Field(
        nullable=True, description="Why the prior was kept (too few pairs, no convergence, ...). Empty: estimated."
    )
    u: Series[float] = pa.Field(
        gt=0,
        le=1,
        description="u from the book when m was estimated (a reused model keeps it): random pairs (exact: the average over values; each pair uses its value's share).",
    )
    bits: Series[float] = pa.Field(description="log2(m / u), capped at max_bits (exact: at the average u).")
    points: Series[float] = pa.Field(
        description="bits x points per bit: what the level adds to the score (exact: at the average u)."
    )
    records_with_field: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="Records of the book having the field when m was estimated."
    )
    pairs_with_field: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="Candidate pairs having the field on both records when m was estimated."
    )
    decision_pairs: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="Must-link pairs of the decisions file having the field on both records when m was set."
    )
    training_pairs: Series[pd.Int64Dtype] = pa.Field(
        ge=0, description="Candidate pairs EM ran on (with an estimated field on both records)."
    )
    em_iterations: Series[pd.Int64Dtype] = pa.Field(ge=0, description="EM iterations run (0: not run).")
    em_converged: Series[bool] = pa.Field(description="Whether EM converged within the iteration limit.")
    model_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$", description="Hash of the model's parameters (fields, m, points per bit, cap)."
    )
    comparisons_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$", description="Hash of the comparisons settings the model was built with."
    )
    estimated_at: Series[UtcTimestamp] = pa.Field(description="When m was estimated (a reused model keeps its time, UTC).")
    re_estimated: Series[bool] = pa.Field(description="Whether this run estimated m (false: reused the previous match_model).")
    reason: Series[str] = pa.Field(description="Why this run re-estimated or reused the model.")

    @pa.dataframe_check(error="(field, level) is the grain and must be unique")
    def grain_is_unique(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["field", "level"], keep=False)


class ClientKeyRetirements(_StrictModel):
    """Client keys retired when their cluster merged into an older one, with the key that survived."""

    retired_client_key: Series[str] = pa.Field(
        unique=True, description="A client_key no longer in use: its client turned out to be the same as an older one."
    )
    client_key: Series[str] = pa.Field(
        description="The older key that survived the merge (it may be retired later too: follow the chain)."
    )
    retired_at: Series[UtcTimestamp] = pa.Field(
        description="When the key was retired: the run that merged its client into an older one (UTC)."
    )
    reason: Series[str] = pa.Field(
        description="Why the key was retired: 'merged into an older cluster' (a new record or a must-link joined the two)."
    )


class TerritoryDim(_StrictModel):
    """Territory dimension: every territory ever issued, its region and segment or overlay, and owner role; ids never reused."""

    # geographic ids (NOR_INS, NOR_INS_2), UNASSIGNED, or an overlay's code (FOUNDATIONS)
    territory_id: Series[str] = pa.Field(
        unique=True,
        str_matches=r"^([A-Z0-9]{1,3}_[A-Z0-9]{1,3}(_\d+)?|UNASSIGNED|[A-Z0-9_]+)$",
        description="The territory: {REGION}_{SEGMENT} prefixes (NOR_INS), a collision suffix, an overlay code, or UNASSIGNED.",
    )
    region: Series[str] = pa.Field(
        nullable=True, description="The territory's canonical region. Empty for overlays and UNASSIGNED."
    )
    segment: Series[str] = pa.Field(
        nullable=True, description="The territory's canonical segment. Empty for overlays and UNASSIGNED."
    )
    overlay: Series[str] = pa.Field(
        nullable=True, description="A specialist (overlay) territory's code. Empty for geographic territories."
    )
    owner_role: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="Owning role: the segment's (reference/segments.csv), the overlay's, or triage for UNASSIGNED.",
    )
    issued_at: Series[UtcTimestamp] = pa.Field(description="When the territory id was first issued (UTC).")

    @pa.dataframe_check(error="a territory is a unique (region, segment), an overlay, or UNASSIGNED: exactly one of them")
    def region_segment_identify_territory(cls, df: pd.DataFrame) -> pd.Series:
        unassigned = df["territory_id"] == UNASSIGNED_TERRITORY_ID
        both_set = df["region"].notna() & df["segment"].notna()
        overlay = df["overlay"].notna() & df["region"].isna() & df["segment"].isna()
        duplicated = df.duplicated(["region", "segment"], keep=False) & both_set
        return (unassigned.astype(int) + both_set.astype(int) + overlay.astype(int) == 1) & ~duplicated


class TerritoryRules(_StrictModel):
    """The rules in force, one rule per row, so the rules are visible (and queryable) next to the data."""

    kind: Series[str] = pa.Field(
        isin=["segmentation tier", "territory rule", "override", "exclusion", "secondary", "overlay"],
        description="What the rule is: segmentation tier, territory rule, override, exclusion, secondary or overlay.",
    )
    rule_id: Series[str] = pa.Field(
        unique=True,
        description="The rule's id in the file; override:<client_key>, exclusion:<client_key>:<territory>, or parent_org.",
    )
    priority: Series[pd.Int64Dtype] = pa.Field(
        nullable=True,
        description="Evaluation order, lower first: a territory rule's priority or a tier's position. Empty for other kinds.",
    )
    criteria: Series[str] = pa.Field(
        nullable=True,
        description="The rule's `when` as JSON (column -> operators, all ANDed). Empty: no condition (override, exclusion, ...).",
    )
    target: Series[str] = pa.Field(
        nullable=True,
        description="What it gives: a segment, 'Region x Segment', an override's territory/advisor, 'never ...' or an overlay.",
    )
    rules_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$",
        description="Content hash (first 12 hex of its sha256) of the active rules file these rows come from.",
    )


class AssignmentsFact(_StrictModel):
    """Which territory and advisor own each client, and why (rule, override, parent, overlay, fallback)."""

    client_key: Series[str] = pa.Field(
        description="Stable client id: the record key (source_system:client_id) of its earliest record at issue; never reused."
    )
    territory_id: Series[str] = pa.Field(
        description="The territory: {REGION}_{SEGMENT} prefixes (NOR_INS), a collision suffix, an overlay code, or UNASSIGNED."
    )
    primary_advisor_email: Series[str] = pa.Field(
        nullable=True,
        str_matches=EMAIL_PATTERN,
        description="PRIMARY: the advisor (pinned, by capacity, or the source's if no roster). Empty: SECONDARY rows or none.",
    )
    assignment_type: Series[str] = pa.Field(
        isin=ASSIGNMENT_TYPES,
        description="PRIMARY (where the rules place the client, with its advisor) or SECONDARY (parent's territory, overlays).",
    )
    is_current: Series[bool] = pa.Field(description="Whether the assignment is in force: true while the client is active.")
    assigned_by: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="Why the client is there: a rule id, override:<client_key>, parent_org, an overlay id, or fallback.",
    )
    segment_rule: Series[str] = pa.Field(
        nullable=True,
        description="The segmentation tier that derived the segment. Empty: the source's own segment, and on SECONDARY rows.",
    )
    advisor_reason: Series[str] = pa.Field(
        nullable=True,
        isin=ADVISOR_REASONS,
        description="Why this advisor (kept, pinned, assigned_new, reassigned_...) or why none. Empty on SECONDARY rows.",
    )
    rules_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$",
        description="Content hash (first 12 hex of its sha256) of the rules file that placed the row.",
    )

    @pa.dataframe_check(error="(client_key, territory_id, assignment_type) is the grain and must be unique")
    def grain_is_unique(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["client_key", "territory_id", "assignment_type"], keep=False)


class ClientDimHistory(_StrictModel):
    """Every version of every client (SCD Type 2): what client_dim said, and when."""

    client_key: Series[str] = pa.Field(
        description="Stable client id: the record key (source_system:client_id) of its earliest record at issue; never reused."
    )
    client_name: Series[str] = pa.Field(description="The client's name in this version.")
    region: Series[str] = pa.Field(nullable=True, description="The client's canonical region in this version.")
    segment: Series[str] = pa.Field(nullable=True, description="The client's canonical segment in this version.")
    parent_org: Series[str] = pa.Field(
        nullable=True, description="Name of the parent organisation (account family) in this version. Empty: no parent."
    )
    primary_advisor_email: Series[str] = pa.Field(
        nullable=True,
        description="The owning advisor's e-mail in this version, lower-cased and validated. Empty: none or invalid.",
    )
    is_active: Series[bool] = pa.Field(description="Whether the client was active in this version.")
    aum_usd: Series[float] = pa.Field(nullable=True, description="Assets under management in USD in this version.")
    business_type: Series[str] = pa.Field(
        nullable=True, description="Kind of client (Family Office, Foundation, Trust, ...) in this version."
    )
    source_system: Series[str] = pa.Field(
        description="The source of the client's most recently updated record when this version opened (crm_api or csv_drop)."
    )
    source_record_id: Series[str] = pa.Field(description="That record's id in its source, when this version opened.")
    source_modified_at: Series[UtcTimestamp] = pa.Field(
        description="When the source last changed that record (UTC), as of this version's opening; not tracked."
    )
    data_issues: Series[str] = pa.Field(
        nullable=True,
        description="What was odd about the client when this version opened, '; '-joined (see client_dim). Empty: nothing.",
    )
    # SCD Type 2 bookkeeping (crm_territory.logic.history.scd2)
    valid_from: Series[UtcTimestamp] = pa.Field(
        description="When this version became true: the start of the run that first saw it (UTC, to the second)."
    )
    valid_to: Series[UtcTimestamp] = pa.Field(
        nullable=True,
        description="When this version stopped being true: start of the run that saw it change or go (UTC). Empty: current.",
    )
    is_current: Series[bool] = pa.Field(description="Whether this is the client's current version (valid_to is empty).")
    change_hash: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{16}$",
        description="Hash (16 hex) of the tracked columns (name, region, segment, parent, advisor, active, AUM, business type).",
    )


class AssignmentsFactHistory(_StrictModel):
    """Every version of every assignment (SCD Type 2): who owned which client, and when."""

    client_key: Series[str] = pa.Field(
        description="Stable client id: the record key (source_system:client_id) of its earliest record at issue; never reused."
    )
    territory_id: Series[str] = pa.Field(
        description="The territory: {REGION}_{SEGMENT} prefixes (NOR_INS), a collision suffix, an overlay code, or UNASSIGNED."
    )
    primary_advisor_email: Series[str] = pa.Field(
        nullable=True,
        description="PRIMARY: the advisor (pinned, by capacity, or the source's if no roster). Empty: SECONDARY rows or none.",
    )
    assignment_type: Series[str] = pa.Field(
        isin=ASSIGNMENT_TYPES,
        description="PRIMARY (where the rules place the client, with its advisor) or SECONDARY (parent's territory, overlays).",
    )
    assignment_is_current: Series[bool] = pa.Field(
        description="The fact's is_current (the client was active) while this version held."
    )
    assigned_by: Series[str] = pa.Field(
        description="Why the client is there: a rule id, override:<client_key>, parent_org, an overlay id, or fallback."
    )
    segment_rule: Series[str] = pa.Field(
        nullable=True,
        description="The segmentation tier that derived the segment. Empty: the source's own segment, and on SECONDARY rows.",
    )
    advisor_reason: Series[str] = pa.Field(
        nullable=True,
        description="Why this advisor (kept, pinned, assigned_new, reassigned_...) or why none. Empty on SECONDARY rows.",
    )
    rules_version: Series[str] = pa.Field(
        description="Content hash of the rules file that placed the row when this version opened (a rules edit alone opens none)."
    )
    # SCD Type 2 bookkeeping (crm_territory.logic.history.scd2)
    valid_from: Series[UtcTimestamp] = pa.Field(
        description="When this version became true: the start of the run that first saw it (UTC, to the second)."
    )
    valid_to: Series[UtcTimestamp] = pa.Field(
        nullable=True,
        description="When this version stopped being true: start of the run that saw it change or go (UTC). Empty: current.",
    )
    is_current: Series[bool] = pa.Field(description="Whether this is the assignment's current version (valid_to is empty).")
    change_hash: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{16}$",
        description="Hash (16 hex) of primary_advisor_email, assignment_is_current, assigned_by and segment_rule.",
    )


class AssignmentsPreview(_StrictModel):
    """What activating the candidate rules (rules/candidate/territory_rules.yaml) would change; nothing moves until activation."""

    client_key: Series[str] = pa.Field(unique=True, description="The client that would change (its stable key).")
    territory_before: Series[str] = pa.Field(
        nullable=True, description="The client's current PRIMARY territory. Empty: a client with none today."
    )
    territory_after: Series[str] = pa.Field(description="The PRIMARY territory the candidate rules would give it.")
    advisor_before: Series[str] = pa.Field(nullable=True, description="The client's current advisor. Empty: none.")
    advisor_after: Series[str] = pa.Field(
        nullable=True, description="The advisor it would have under the candidate rules. Empty: none."
    )
    assigned_by_after: Series[str] = pa.Field(
        description="What would place it under the candidate rules (rule id, override, fallback)."
    )
    change: Series[str] = pa.Field(
        isin=["territory", "advisor", "territory and advisor"],
        description="What would change: territory, advisor, or territory and advisor.",
    )
    candidate_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$",
        description="Content hash (12 hex) of the candidate rules file previewed; activate-rules --version takes it.",
    )


WRITEBACK_PLAN_STATUSES = ["send", "refused"]
WRITEBACK_LOG_STATUSES = ["ok", "conflict", "invalid", "not_found", "refused"]
WRITEBACK_ACTIONS = ["apply", "rollback"]


class CrmWritebackPlan(_StrictModel):
    """What the CRM must change to hold the current PRIMARY assignments: owner and territory, old -> new, per CRM record.

    The CRM's values and etags are those of the latest pull (the ``crm_api_clients`` snapshot); nothing is sent
    until the plan is applied (``crm_writeback_job`` or ``cli writeback apply``), and a record changed in the CRM
    since that pull is a conflict at apply time (its etag no longer matches), reported, never overwritten.
    """

    plan_id: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{16}$",
        description="Hash (16 hex) of the plan's rows (CRM id, new values, etag read): the same plan has the same id; "
        "batch ids and idempotency keys derive from it.",
    )
    crm_client_id: Series[str] = pa.Field(
        unique=True, description="The CRM's id of the record to change (a crm_api source record of the client)."
    )
    client_key: Series[str] = pa.Field(
        description="The client the record belongs to (client_xref), whose PRIMARY row is written."
    )
    owner_before: Series[str] = pa.Field(
        nullable=True, description="The record's owner_email in the CRM as of the latest pull (crm_api_clients). Empty: none."
    )
    owner_after: Series[str] = pa.Field(
        nullable=True, description="The owner to write: the PRIMARY row's advisor. Empty: the fact has none (the row is refused)."
    )
    territory_before: Series[str] = pa.Field(
        nullable=True, description="The record's territory_id in the CRM as of the latest pull (crm_api_clients). Empty: none."
    )
    territory_after: Series[str] = pa.Field(description="The territory to write: the PRIMARY row's territory_id.")
    change: Series[str] = pa.Field(
        isin=["owner", "territory", "owner and territory"], description="What changes: owner, territory, or both."
    )
    assigned_by: Series[str] = pa.Field(description="The rule that placed the client (assignments_fact.assigned_by).")
    advisor_reason: Series[str] = pa.Field(
        nullable=True, description="Why this advisor (assignments_fact.advisor_reason). Empty: not given."
    )
    etag: Series[str] = pa.Field(
        description="The record's etag as of the latest pull (crm_api_clients): sent as if_match, so a record changed in the "
        "CRM since that pull is a conflict."
    )
    status: Series[str] = pa.Field(
        isin=WRITEBACK_PLAN_STATUSES,
        description="send (applied by the next apply) or refused (never sent: refusal_reason says why).",
    )
    refusal_reason: Series[str] = pa.Field(
        nullable=True, description="Why the row is refused (its advisor is not a known, active advisor). Empty: sent."
    )
    planned_at: Series[UtcTimestamp] = pa.Field(description="When the plan was computed (UTC).")


class CrmWritebackLog(_StrictModel):
    """Every record outcome of every write-back batch, appended as each batch is answered (never rewritten).

    Kept outside the run's table set, where the storage is: ``<data_dir>/writeback/crm_writeback_log.csv`` locally,
    ``CORE.CRM_WRITEBACK_LOG`` on Snowflake. An apply appends batch by batch, so an interrupted apply resumes from it,
    from wherever it runs.
    """

    batch_id: Series[str] = pa.Field(
        description="The batch: <plan_id>-<batch number, 5 digits>, <plan_id>-refused-<number> (refused rows, never sent), "
        "or rollback-<batch_id> for a rollback."
    )
    plan_id: Series[str] = pa.Field(description="The plan applied, or rollback-<batch_id> for a rollback.")
    action: Series[str] = pa.Field(isin=WRITEBACK_ACTIONS, description="apply (a plan's batch) or rollback (a batch undone).")
    crm_client_id: Series[str] = pa.Field(description="The CRM record written (or refused).")
    client_key: Series[str] = pa.Field(nullable=True, description="The client the record belongs to.")
    owner_before: Series[str] = pa.Field(
        nullable=True, description="The owner the batch expected the record to have. Empty: none."
    )
    owner_after: Series[str] = pa.Field(nullable=True, description="The owner the batch wrote (or would have). Empty: none.")
    territory_before: Series[str] = pa.Field(nullable=True, description="The territory the batch expected. Empty: none.")
    territory_after: Series[str] = pa.Field(
        nullable=True, description="The territory the batch wrote (or would have). Empty: none."
    )
    etag_before: Series[str] = pa.Field(
        nullable=True, description="The etag sent as if_match (the version the batch expected). Empty: refused rows."
    )
    etag_after: Series[str] = pa.Field(
        nullable=True,
        description="ok: the record's etag after the write; conflict: its current etag. Empty: nothing written or not found.",
    )
    crm_owner: Series[str] = pa.Field(
        nullable=True, description="conflict: the owner the CRM holds now (set by someone else), for review. Else empty."
    )
    crm_territory: Series[str] = pa.Field(
        nullable=True, description="conflict: the territory the CRM holds now, for review. Else empty."
    )
    status: Series[str] = pa.Field(
        isin=WRITEBACK_LOG_STATUSES,
        description="ok (written, or already held), conflict (changed in the CRM since read: not written), invalid, "
        "not_found (no such record any more) or refused (never sent).",
    )
    error: Series[str] = pa.Field(nullable=True, description="Why the record was not written, in words. Empty: ok.")
    logged_at: Series[UtcTimestamp] = pa.Field(description="When the batch's answer was logged (UTC).")


class CrmOutboundPlan(_StrictModel):
    """What each source that takes files must change to hold the current PRIMARY advisors: one row per record whose
    owner in the source's latest export differs from its client's advisor (nothing is written here).

    ``python -m crm_territory.cli writeback export`` turns the ``send`` rows into one import file per source, in the
    source's own layout, under ``data/outbound/<source_system>/``. The layouts have no territory column, so the
    files change owners; ``territory_after`` is there for the people reviewing them.
    """

    plan_id: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{16}$", description="Hash (16 hex) of the plan's rows: the same plan, the same id (and file name)."
    )
    source_system: Series[str] = pa.Field(
        str_matches=SOURCE_SYSTEM_PATTERN,
        description="The file source: csv_drop (the seed's layout) or a data/sources/ layout's.",
    )
    source_record_id: Series[str] = pa.Field(description="The record's id in that source (as raw_clients holds it).")
    client_key: Series[str] = pa.Field(description="The client the record belongs to (client_xref).")
    owner_before: Series[str] = pa.Field(
        nullable=True, description="The owner the source's latest export gave the record, as sent. Empty: none."
    )
    owner_after: Series[str] = pa.Field(
        nullable=True, description="The owner to hold: the PRIMARY row's advisor (lower case). Empty: none placed (refused)."
    )
    owner_as_written: Series[str] = pa.Field(
        nullable=True,
        description="owner_after as the source spells owners (its layout's map, inverted), as the import file writes it. "
        "Empty: refused.",
    )
    territory_after: Series[str] = pa.Field(description="The client's PRIMARY territory (for review; not in the file).")
    assigned_by: Series[str] = pa.Field(description="The rule that placed the client (assignments_fact.assigned_by).")
    id_values: Series[str] = pa.Field(
        nullable=True,
        description="The import file's id column values (several joined by the unit separator, U+001F, for a derived id). "
        "Empty: the source cannot take owners back.",
    )
    status: Series[str] = pa.Field(
        isin=WRITEBACK_PLAN_STATUSES, description="send (in the next import file) or refused (refusal_reason says why)."
    )
    refusal_reason: Series[str] = pa.Field(nullable=True, description="Why the row is not in the import file. Empty: sent.")
    planned_at: Series[UtcTimestamp] = pa.Field(description="When the plan was computed (UTC).")


class CrmWritebackLease(_StrictModel):
    """Who is applying a write-back now, on Snowflake: one row, taken and renewed by the apply, released at its end.

    The warehouse's stand-in for the local ``flock`` (``<data_dir>/writeback/writeback.lock``): two applies at once
    would send the same batch twice and log it twice. A lease that is not renewed expires, so a killed apply never
    leaves the write-back blocked for longer than its time to live.
    """

    name: Series[str] = pa.Field(unique=True, description="The lease: crm_writeback (one per database).")
    holder: Series[str] = pa.Field(
        nullable=True, description="host:pid:token of the apply holding it. Empty: free (released at the end of an apply)."
    )
    acquired_at: Series[UtcTimestamp] = pa.Field(nullable=True, description="When the holder took it (UTC).")
    expires_at: Series[UtcTimestamp] = pa.Field(
        nullable=True, description="When it lapses unless renewed (UTC): renewed after every batch."
    )


class ClientPlacementInWarehouse(_StrictModel):
    """Where the rules in force place each client, computed inside Snowflake by the compiled SQL
    (``crm_territory.logic.rules.sql``) over the run's client_dim: the PRIMARY and SECONDARY rows of
    assignments_fact, with the same explanations, without advisors (capacity stays in Python). Snowflake storage only."""

    client_key: Series[str] = pa.Field(
        description="Stable client id: the record key (source_system:client_id) of its earliest record at issue; never reused."
    )
    assignment_type: Series[str] = pa.Field(
        isin=ASSIGNMENT_TYPES,
        description="PRIMARY (where the rules place the client) or SECONDARY (parent's territory, overlays), as in assignments_fact.",
    )
    territory_id: Series[str] = pa.Field(
        description="The target's id in this run's territory_dim (UNASSIGNED: no target, or not issued), or the overlay code."
    )
    target_region: Series[str] = pa.Field(
        nullable=True, description="The region the rules give. Empty: no target (fallback), and on overlay rows."
    )
    target_segment: Series[str] = pa.Field(
        nullable=True, description="The segment the rules give. Empty: no target (fallback), and on overlay rows."
    )
    overlay: Series[str] = pa.Field(nullable=True, description="An overlay row's specialist territory code. Empty: other rows.")
    segment: Series[str] = pa.Field(
        nullable=True,
        description="PRIMARY: the client's segment as the rules see it (a tier's, else the source's). Empty: none, and on SECONDARY rows.",
    )
    segment_rule: Series[str] = pa.Field(
        nullable=True,
        description="The segmentation tier that derived the segment. Empty: the source's own segment, and on SECONDARY rows.",
    )
    assigned_by: Series[str] = pa.Field(
        str_length={"min_value": 1},
        description="Why the client is there: a rule id, override:<client_key>, parent_org, an overlay id, or fallback.",
    )
    pinned_advisor: Series[str] = pa.Field(
        nullable=True, description="PRIMARY: the advisor an override pins. Empty: none, and on SECONDARY rows."
    )
    rules_version: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{12}$",
        description="Content hash (first 12 hex of its sha256) of the rules file that placed the row.",
    )


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
            "match_model", MatchModel, "matching", "core",
            "one row per field and level of the model in force (field, level).",
            "CORE", "MATCH_MODEL",
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
        TableSpec(
            "crm_writeback_plan", CrmWritebackPlan, "writeback", "core",
            "one row per CRM record (crm_client_id) whose owner or territory differs from its client's current PRIMARY assignment.",
            "CORE", "CRM_WRITEBACK_PLAN", frozenset({"api", "pandas"}),
        ),
        TableSpec(
            "crm_outbound_plan", CrmOutboundPlan, "writeback", "core",
            "one row per file-source record (source_system, source_record_id) whose owner differs from its client's current PRIMARY advisor.",
            "CORE", "CRM_OUTBOUND_PLAN", frozenset({"csv", "pandas"}),
        ),
    ]
}  # fmt: skip

# Tables that are not assets: the write-back's own append-only log and its lease. They live where the storage is
# (CRM_STORAGE) but outside the run's table set: an apply writes them batch by batch, never a run.
JOURNAL_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            "crm_writeback_log", CrmWritebackLog, "writeback", "core",
            "one row per CRM record per batch (batch_id, crm_client_id): the outcome of sending it, or of refusing to.",
            "CORE", "CRM_WRITEBACK_LOG",
        ),
        TableSpec(
            "crm_writeback_lease", CrmWritebackLease, "writeback", "core",
            "one row per lease (name): at most one, crm_writeback.",
            "CORE", "CRM_WRITEBACK_LEASE",
        ),
    ]
}  # fmt: skip


# Tables computed inside the warehouse, only with CRM_STORAGE=snowflake: their assets are defined only there (the CSV
# storage has no warehouse), so they stay out of TABLES, whose every table is an asset with a schema check in every
# environment. A run stages and publishes them with its other tables (crm_territory/storage/snowflake.py).
WAREHOUSE_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            "client_placement_in_warehouse", ClientPlacementInWarehouse, "rules", "core",
            "one row per (client_key, territory_id, assignment_type).",
            "CORE", "CLIENT_PLACEMENT_IN_WAREHOUSE", frozenset({"snowflake", "sql"}),
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
