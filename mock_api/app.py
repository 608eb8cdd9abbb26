"""FastAPI app that serves the synthetic client book like the real CRM would.

It exists so the engine's HTTP source can be exercised end to end (auth,
pagination, incremental ``updated_since`` pulls, retries) without the real
CRM. Faults are injectable and seeded so a flaky-network test is repeatable.

The book can be edited (``PATCH /clients/{id}``, ``POST /clients``) with a
separate write token (``MOCK_CRM_WRITE_TOKEN``; the read token cannot write).
Every edit moves the client's ``updated_at`` (so the incremental pull sees it)
and is recorded in an ordered change log served as a cursor-paginated feed,
``GET /changes?after=<cursor>``. Only the last ``MOCK_CRM_CHANGE_LOG_SIZE``
changes are kept, so an old cursor really expires (HTTP 410, ``"error":
"cursor_expired"``), as it would in a real CRM's feed.

Written to as a real CRM would be (the assignment write-back):

- Every record carries the CRM's own assignment: ``owner_email`` (the advisor
  who owns the client in the CRM: at start the record's ``advisor_email`` when
  that is a syntactically valid e-mail, else null), ``territory_id`` (null at
  start), ``assignment_version`` (0 at start, +1 on every write that changes
  the owner or the territory) and ``etag``, a version stamp that changes on
  every write that changes the record (a write of the current values changes
  nothing: no new etag, no feed entry). ``GET /clients/{id}`` reads one record
  back, with its etag in the ``ETag`` header too.
- ``PATCH /clients/{id}`` takes ``If-Match: <etag>`` (quoted or bare; ``*``
  matches any): a stale one answers 412 with the current etag and changes
  nothing. Without ``If-Match`` the write is unconditional.
- ``POST /clients/bulk-assign`` sets owner and territory of up to
  ``MAX_BULK_RECORDS`` (200) clients and answers per record: ``ok``,
  ``conflict`` (stale ``if_match``), ``invalid`` or ``not_found``.
- ``Idempotency-Key`` on any write: the same key with the same request replays
  the stored answer (header ``Idempotent-Replayed: true``) without applying it
  again; the same key with another request answers 422. The last
  ``MOCK_CRM_IDEMPOTENCY_KEYS`` keys are kept (least recently used dropped).
- ``MOCK_CRM_WRITE_RATE_LIMIT`` (writes per second, 0 = no limit) answers 429
  with ``Retry-After``; ``MOCK_CRM_ERROR_RATE`` and ``MOCK_CRM_LATENCY_MS`` apply
  to writes before anything is written; ``MOCK_CRM_DROP_AFTER_WRITE_RATE``
  is the fraction of writes that are applied (answered 2xx) and then lose
  their answer: the connection closes before the body is sent (seeded by
  ``MOCK_CRM_FAULT_SEED``); only a retry with the same ``Idempotency-Key`` is
  then safe. A replayed answer is never dropped.

``create_app(settings)`` builds an app explicitly (tests, ``python -m
mock_api``). The module attribute ``app`` (for ``uvicorn mock_api.app:app``)
is built lazily from the environment on first access, so merely importing
this module never requires ``CRM_API_TOKEN``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import os
import random
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from starlette.types import Receive, Scope, Send

from mock_api.generator import CLIENT_COLUMNS, generate_advisors, generate_clients

__all__ = [
    "MAX_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_CHANGE_LOG_SIZE",
    "DEFAULT_IDEMPOTENCY_KEYS",
    "MAX_BULK_RECORDS",
    "MAX_CHANGES_LIMIT",
    "RECORD_COLUMNS",
    "MockApiConfigError",
    "MockApiSettings",
    "create_app",
    "is_valid_email",
]

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
#: Larger page sizes are clamped (not rejected), like most CRM APIs do; the
#: response's ``page_size`` tells the client what it actually got.
MAX_PAGE_SIZE = 1000

#: Changes kept in the log; a cursor older than that has expired (HTTP 410).
DEFAULT_CHANGE_LOG_SIZE = 10_000
#: Changes per /changes page: the default, and the clamp (like page_size).
DEFAULT_CHANGES_LIMIT = 100
MAX_CHANGES_LIMIT = 1000

#: Records per ``POST /clients/bulk-assign``; more is refused whole (413), nothing applied.
MAX_BULK_RECORDS = 200
#: Idempotency keys remembered (least recently used dropped first), and the bytes their stored answers may hold.
DEFAULT_IDEMPOTENCY_KEYS = 100_000
IDEMPOTENCY_MAX_BYTES = 256 * 1024 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255

#: The CRM's assignment of a record, beside the generated columns: owner, territory, their version, the record's etag.
ASSIGNMENT_COLUMNS: tuple[str, ...] = ("owner_email", "territory_id", "assignment_version", "etag")
#: Column order of a served record.
RECORD_COLUMNS: tuple[str, ...] = CLIENT_COLUMNS + ASSIGNMENT_COLUMNS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# local@domain: the local part of RFC 5322's dot-atom characters, a dotted domain of letter/digit/hyphen labels
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


def is_valid_email(value: object) -> bool:
    """A syntactically valid e-mail address (what the CRM accepts as an owner): ``local@domain.tld``, at most 254 characters."""
    return (
        isinstance(value, str)
        and len(value) <= 254
        and _EMAIL.fullmatch(value) is not None
        and len(value.partition("@")[0]) <= 64
    )


def _check_owner_email(value: str | None) -> str | None:
    if value is not None and not is_valid_email(value):
        raise ValueError(f"owner_email {value!r} is not a valid e-mail address")
    return value


def _check_territory_id(value: str | None) -> str | None:
    if value is not None and (not value.strip() or len(value) > 64):
        raise ValueError("territory_id must be 1 to 64 characters, not blank (null clears it)")
    return value


class MockApiConfigError(ValueError):
    """Settings are missing or invalid; the message says which variable to fix."""


@dataclass(frozen=True)
class MockApiSettings:
    """Everything that shapes one mock API instance.

    ``token`` and ``write_token`` are excluded from ``repr`` so settings can be
    logged or shown in a failing assertion without leaking a secret. An empty
    ``write_token`` means the book is read-only (writes answer 403).
    ``write_rate_limit`` is writes per second (0: no limit; above it: 429 with
    ``Retry-After``); ``drop_after_write_rate`` the fraction of writes applied
    and then answered with a dropped connection; ``idempotency_keys`` how many
    ``Idempotency-Key`` answers are remembered.
    """

    token: str = field(repr=False)
    clients: int = 2000
    seed: int = 42
    error_rate: float = 0.0
    fault_seed: int = 0
    latency_ms: float = 0.0
    fail_pages: frozenset[int] = frozenset()
    write_token: str = field(default="", repr=False)
    change_log_size: int = DEFAULT_CHANGE_LOG_SIZE
    write_rate_limit: float = 0.0
    drop_after_write_rate: float = 0.0
    idempotency_keys: int = DEFAULT_IDEMPOTENCY_KEYS

    def __post_init__(self) -> None:
        if not self.token or not self.token.strip():
            raise MockApiConfigError(
                "CRM_API_TOKEN is not set: export CRM_API_TOKEN=<token> (clients must send it as 'Authorization: Bearer <token>')"
            )
        if self.clients < 0:
            raise MockApiConfigError(f"MOCK_CRM_CLIENTS must be >= 0, got {self.clients}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise MockApiConfigError(f"MOCK_CRM_ERROR_RATE must be between 0 and 1, got {self.error_rate}")
        if self.latency_ms < 0:
            raise MockApiConfigError(f"MOCK_CRM_LATENCY_MS must be >= 0, got {self.latency_ms}")
        if any(p < 1 for p in self.fail_pages):
            raise MockApiConfigError(f"MOCK_CRM_FAIL_PAGES must list page numbers >= 1, got {sorted(self.fail_pages)}")
        if self.write_token and secrets.compare_digest(self.write_token.encode("utf-8"), self.token.encode("utf-8")):
            # one token for both would let every reader write: the scopes would mean nothing
            raise MockApiConfigError(
                "MOCK_CRM_WRITE_TOKEN must differ from CRM_API_TOKEN (the read token must not be able to write)"
            )
        if self.write_token and not self.write_token.strip():
            raise MockApiConfigError("MOCK_CRM_WRITE_TOKEN is blank: unset it (read-only book) or give a token")
        if self.change_log_size < 1:
            raise MockApiConfigError(f"MOCK_CRM_CHANGE_LOG_SIZE must be >= 1, got {self.change_log_size}")
        if not (self.write_rate_limit >= 0 and math.isfinite(self.write_rate_limit)):
            raise MockApiConfigError(
                f"MOCK_CRM_WRITE_RATE_LIMIT must be >= 0 writes per second (0: no limit), got {self.write_rate_limit}"
            )
        if not 0.0 <= self.drop_after_write_rate <= 1.0:
            raise MockApiConfigError(f"MOCK_CRM_DROP_AFTER_WRITE_RATE must be between 0 and 1, got {self.drop_after_write_rate}")
        if self.idempotency_keys < 1:
            raise MockApiConfigError(f"MOCK_CRM_IDEMPOTENCY_KEYS must be >= 1, got {self.idempotency_keys}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockApiSettings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Variables: ``CRM_API_TOKEN`` (required), ``MOCK_CRM_CLIENTS``,
        ``MOCK_CRM_SEED``, ``MOCK_CRM_ERROR_RATE``, ``MOCK_CRM_FAULT_SEED``,
        ``MOCK_CRM_LATENCY_MS``, ``MOCK_CRM_FAIL_PAGES`` (e.g. "3" or "2,5"),
        ``MOCK_CRM_WRITE_TOKEN`` (unset: read-only), ``MOCK_CRM_CHANGE_LOG_SIZE``,
        ``MOCK_CRM_WRITE_RATE_LIMIT`` (writes per second, 0: none),
        ``MOCK_CRM_DROP_AFTER_WRITE_RATE`` (0 to 1), ``MOCK_CRM_IDEMPOTENCY_KEYS``.
        Empty values count as unset.
        """
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value if value else default

        def number(name: str, default: str, kind: type[int] | type[float]) -> Any:
            raw = get(name, default)
            try:
                return kind(raw)
            except ValueError:
                raise MockApiConfigError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {raw!r}") from None

        return cls(
            token=env.get("CRM_API_TOKEN", ""),
            clients=number("MOCK_CRM_CLIENTS", "2000", int),
            seed=number("MOCK_CRM_SEED", "42", int),
            error_rate=number("MOCK_CRM_ERROR_RATE", "0", float),
            fault_seed=number("MOCK_CRM_FAULT_SEED", "0", int),
            latency_ms=number("MOCK_CRM_LATENCY_MS", "0", float),
            fail_pages=parse_fail_pages(get("MOCK_CRM_FAIL_PAGES", "")),
            write_token=env.get("MOCK_CRM_WRITE_TOKEN", "") if get("MOCK_CRM_WRITE_TOKEN", "") else "",
            change_log_size=number("MOCK_CRM_CHANGE_LOG_SIZE", str(DEFAULT_CHANGE_LOG_SIZE), int),
            write_rate_limit=number("MOCK_CRM_WRITE_RATE_LIMIT", "0", float),
            drop_after_write_rate=number("MOCK_CRM_DROP_AFTER_WRITE_RATE", "0", float),
            idempotency_keys=number("MOCK_CRM_IDEMPOTENCY_KEYS", str(DEFAULT_IDEMPOTENCY_KEYS), int),
        )


def parse_fail_pages(raw: str) -> frozenset[int]:
    """Parse "3" / "2, 5" / "" into a set of page numbers."""
    pages: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            pages.add(int(part))
        except ValueError:
            raise MockApiConfigError(f"MOCK_CRM_FAIL_PAGES must be a comma list of page numbers, got {raw!r}") from None
    return frozenset(pages)


# --- response models (they document the API in /openapi.json) --------------


class ClientRecord(BaseModel):
    client_id: str = Field(description='Unique id, digits only, starting at "100001".')
    client_name: str | None = Field(description="Organisation name; may be empty or null.")
    region: str | None = Field(description="Sales region as typed in the CRM (unnormalised spellings).")
    segment: str | None = Field(description="Client segment as typed in the CRM (unnormalised spellings).")
    parent_org: str | None = Field(description="Parent organisation, null when unknown.")
    advisor_email: str | None = Field(description="Covering advisor's e-mail; may be mis-cased, invalid or null.")
    status: str = Field(description='"active" or "inactive".')
    updated_at: str = Field(description='Last change, ISO-8601 UTC, e.g. "2026-03-04T12:34:56Z".')
    aum_usd: float | None = Field(description="Assets under management in USD; null when unknown.")
    business_type: str | None = Field(description="Kind of client (Corporation, Family Office, Trust, ...); null when unknown.")
    owner_email: str | None = Field(
        description="The advisor who owns the client in the CRM (what the assignment write-back sets); a valid e-mail "
        "or null. At start: advisor_email when that is a valid e-mail, else null."
    )
    territory_id: str | None = Field(description="The client's territory in the CRM; null until one is written.")
    assignment_version: int = Field(description="0 at start; +1 on every write that changes owner_email or territory_id.")
    etag: str = Field(
        description="Version stamp: changes on every write that changes the record; send it as If-Match (or a bulk "
        "record's if_match) to write only over this version."
    )


class AdvisorRecord(BaseModel):
    advisor_email: str = Field(description="Lower-case e-mail, unique.")
    advisor_name: str
    regions: list[str] = Field(description="Canonical regions the advisor covers.")
    segments: list[str] = Field(description="Canonical segments the advisor covers.")
    capacity: int = Field(description="Maximum number of clients.")
    active: bool


class ClientsPage(BaseModel):
    data: list[ClientRecord]
    page: int = Field(description="Page number served (1-based).")
    page_size: int = Field(description=f"Page size actually used (requests above {MAX_PAGE_SIZE} are clamped).")
    total: int = Field(description="Records matching the filter, over all pages.")
    total_pages: int
    next_page: int | None = Field(description="Next page number, null on the last page or past the end.")


class FieldChange(BaseModel):
    old: Any = Field(alias="from", description="Value before the change (null for a create).")
    new: Any = Field(alias="to", description="Value after the change.")


class Change(BaseModel):
    cursor: str = Field(description="This change's position in the feed: pass it as `after` to read what follows.")
    kind: str = Field(description='"create", "update" or "status_change" (the status changed, maybe with other fields).')
    client_id: str
    changed_at: str = Field(description="When the change was made, ISO-8601 UTC; also the client's new updated_at.")
    fields: dict[str, FieldChange] = Field(description="Every field the change set, with its value before and after.")
    etag: str | None = Field(default=None, description="The client's etag after the change.")


class ChangesPage(BaseModel):
    data: list[Change] = Field(description="Changes after the cursor, oldest first.")
    next_cursor: str = Field(description="Pass as `after` for the next page (the request's own cursor when data is empty).")
    has_more: bool = Field(description="More changes follow next_cursor right now.")
    head: str = Field(description="Cursor of the newest change in the log (a cursor that sees nothing when none was made).")


class CursorExpired(BaseModel):
    error: str = Field(description='"cursor_expired": read everything again (full pull), then follow the feed from `head`.')
    detail: str
    head: str


class ClientPatch(BaseModel):
    """The fields a write may set; a field left out keeps its value, an unknown one is refused (422)."""

    model_config = ConfigDict(extra="forbid")

    client_name: str | None = None
    region: str | None = None
    segment: str | None = None
    parent_org: str | None = None
    advisor_email: str | None = None
    status: Literal["active", "inactive"] | None = None
    aum_usd: float | None = None
    business_type: str | None = None
    owner_email: str | None = Field(default=None, description="A valid e-mail address; null: no owner.")
    territory_id: str | None = Field(default=None, description="1 to 64 characters; null: no territory.")

    _owner = field_validator("owner_email")(_check_owner_email)
    _territory = field_validator("territory_id")(_check_territory_id)


class ClientCreate(ClientPatch):
    client_id: str | None = Field(default=None, min_length=1, max_length=64, description="Omitted: the next free numeric id.")
    client_name: str | None = Field(description="Organisation name (required, may be null like in the book).")
    status: Literal["active", "inactive"] = "active"


class WriteResult(BaseModel):
    record: ClientRecord
    change: Change | None = Field(description="The change recorded, null when the write changed nothing.")
    etag: str = Field(description="The client's etag after the write (also the ETag header).")


class PreconditionFailed(BaseModel):
    error: str = Field(description='"precondition_failed": the If-Match etag is not the current one; nothing was written.')
    detail: str
    client_id: str
    etag: str = Field(description="The client's current etag: read the record again, then decide.")


class AssignmentWrite(BaseModel):
    """One record of a bulk assignment; a field left out keeps its value, null clears it."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    owner_email: str | None = Field(default=None, description="A valid e-mail address; null: no owner.")
    territory_id: str | None = Field(default=None, description="1 to 64 characters; null: no territory.")
    if_match: str | None = Field(default=None, description="Write only if the client's etag is this one (else: conflict).")

    _owner = field_validator("owner_email")(_check_owner_email)
    _territory = field_validator("territory_id")(_check_territory_id)

    @model_validator(mode="after")
    def _sets_something(self) -> AssignmentWrite:
        if not {"owner_email", "territory_id"} & self.model_fields_set:
            raise ValueError("nothing to write: give owner_email and/or territory_id")
        return self


class BulkAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[Any] = Field(
        description=f"Up to {MAX_BULK_RECORDS} objects {{client_id, owner_email, territory_id, if_match}}, applied in order."
    )


class AssignmentOutcome(BaseModel):
    client_id: str | None = Field(description="The record's client_id as sent (null when it had none).")
    status: Literal["ok", "conflict", "invalid", "not_found"] = Field(
        description="ok: written (or already so); conflict: if_match is stale; invalid: the record is malformed; "
        "not_found: no such client. Only ok wrote anything."
    )
    changed: bool = Field(description="The write changed the record (false: it held these values already).")
    etag_before: str | None = Field(description="The client's etag before this record (null when not found).")
    etag_after: str | None = Field(description="The client's etag after it (null unless ok).")
    assignment_version: int | None = Field(description="The client's assignment_version after this record (null when not found).")
    error: str | None = Field(description="Why the record was not written (null when ok).")


class BulkAssignResult(BaseModel):
    results: list[AssignmentOutcome] = Field(description="One per record sent, in the same order.")
    counts: dict[str, int] = Field(description="Records per status.")


class Health(BaseModel):
    status: str
    clients: int


# --- the book ---------------------------------------------------------------


class _Book:
    """The client book: one row per client, served in (updated_at, write order) order.

    Rows are stored in place (a write sets one row's values, O(1)); ``row_of`` maps a client id to its
    row. The served order is a sort over (updated_at, rank), where a record's rank is its place in
    the generated book's (updated_at, client_id) order and every write gives it the next rank: an
    edited client moves after every record of the same second, and ``updated_since`` matches a
    suffix of the order (a binary search). The sort is redone lazily, at the first read after
    writes, so a burst of writes (a bulk assignment of 200 records) costs no sort at all.

    ``etag`` is ``<boot>-<revision>``: the revision is unique in this book and new at every write;
    the boot id is new at every start, so an etag from an earlier run of the mock (whose book was
    regenerated) never matches.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        n = len(frame)
        ts = pd.to_datetime(frame["updated_at"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
        # Integer microseconds since the epoch: comparable with any parsed
        # ``updated_since`` (even year 9999, which a ns Timestamp cannot hold).
        micros = (ts.astype("int64") // 1000).to_numpy().astype(np.int64)
        # Numeric tiebreak so the order stays right when ids reach 7 digits.
        order = np.lexsort((frame["client_id"].astype("int64").to_numpy(), micros))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n, dtype=np.int64)
        # Object columns, turned into dicts only for the records being served:
        # converting a 1M-row book to dicts up front would take ~10 s.
        self._columns = {name: frame[name].to_numpy(dtype=object).copy() for name in CLIENT_COLUMNS}
        advisor = frame["advisor_email"]
        usable = [email for email in advisor.dropna().unique() if is_valid_email(email)]  # a few hundred forms: check each once
        self._columns["owner_email"] = advisor.where(advisor.isin(usable), None).to_numpy(dtype=object)
        self._columns["territory_id"] = np.full(n, None, dtype=object)
        self._micros = micros
        self._rank = rank
        self._version = np.zeros(n, dtype=np.int64)
        self._revision = np.arange(1, n + 1, dtype=np.int64)
        self._next_rank = n
        self._next_revision = n + 1
        self.boot = secrets.token_hex(4)
        self._row_of: dict[str, int] = dict(zip(self._columns["client_id"].tolist(), range(n)))
        self._order: np.ndarray | None = order
        self._sorted_micros = micros[order]
        self._max_numeric_id: int | None = None

    def __len__(self) -> int:
        return len(self._micros)

    def _served_order(self) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None:
            self._order = np.lexsort((self._rank, self._micros))
            self._sorted_micros = self._micros[self._order]
        return self._order, self._sorted_micros

    def etag_of(self, row: int) -> str:
        return f"{self.boot}-{int(self._revision[row])}"

    def version_of(self, row: int) -> int:
        return int(self._version[row])

    def _rows_as_records(self, rows: np.ndarray) -> list[dict[str, Any]]:
        columns = [self._columns[name][rows] for name in _STORED_COLUMNS]
        versions = self._version[rows].tolist()
        etags = [f"{self.boot}-{r}" for r in self._revision[rows].tolist()]
        return [dict(zip(RECORD_COLUMNS, values)) for values in zip(*columns, versions, etags)]

    def records(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Records ``lo:hi`` (in served order) as JSON-ready dicts; ``None`` stays null."""
        order, _ = self._served_order()
        return self._rows_as_records(order[lo:hi])

    def record(self, row: int) -> dict[str, Any]:
        """The record stored at ``row`` (see ``row_of``)."""
        return self._rows_as_records(np.array([row]))[0]

    def first_index_since(self, since: datetime | None) -> int:
        if since is None:
            return 0
        key = (since - _EPOCH) // _MICROSECOND
        return int(np.searchsorted(self._served_order()[1], key, side="left"))

    def row_of(self, client_id: str) -> int | None:
        return self._row_of.get(client_id)

    def put(self, record: dict[str, Any], at: datetime, row: int | None) -> tuple[str, str]:
        """Store ``record`` stamped ``at`` at ``row`` (None: a new row); return its (updated_at, etag).

        ``record`` must hold every stored column and ``assignment_version``; its ``updated_at`` and
        ``etag`` are replaced. A new row (a create) copies the arrays, O(n): creates come from people
        and tests. An update is O(1).
        """
        if row is None:
            row = len(self._micros)
            for name, column in self._columns.items():
                grown = np.empty(row + 1, dtype=object)
                grown[:row] = column
                self._columns[name] = grown
            self._micros, self._rank, self._version, self._revision = (
                np.append(array, 0) for array in (self._micros, self._rank, self._version, self._revision)
            )
            self._row_of[record["client_id"]] = row
            if self._max_numeric_id is not None and record["client_id"].isdigit():
                self._max_numeric_id = max(self._max_numeric_id, int(record["client_id"]))
        updated_at = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        for name in _STORED_COLUMNS:
            self._columns[name][row] = updated_at if name == "updated_at" else record[name]
        self._micros[row] = (at - _EPOCH) // _MICROSECOND
        self._rank[row] = self._next_rank
        self._version[row] = record["assignment_version"]
        self._revision[row] = self._next_revision
        self._next_rank += 1
        self._next_revision += 1
        self._order = None
        return updated_at, self.etag_of(row)

    def next_numeric_id(self) -> str:
        if self._max_numeric_id is None:
            ids = pd.to_numeric(pd.Series(self._columns["client_id"]), errors="coerce")
            self._max_numeric_id = int(ids.max()) if ids.notna().any() else 100_000
        return str(self._max_numeric_id + 1)


#: The columns stored as objects, in served order; ``assignment_version`` and ``etag`` follow them.
_STORED_COLUMNS: tuple[str, ...] = CLIENT_COLUMNS + ("owner_email", "territory_id")
assert RECORD_COLUMNS == _STORED_COLUMNS + ("assignment_version", "etag")


def _stamp_now() -> datetime:
    """Now, rounded UP to the whole second (updated_at has seconds only).

    Rounding down could stamp a change before the start of a pull that began in the same second and
    missed it; the next incremental pull asks for ``updated_at >=`` that start, and would miss it again.
    """
    now = datetime.now(UTC)
    whole = now.replace(microsecond=0)
    return whole if whole == now else whole + timedelta(seconds=1)


class CursorError(ValueError):
    """A cursor this log cannot continue from; ``expired`` says whether it is a real cursor that is too old or foreign."""

    def __init__(self, message: str, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


class _ChangeLog:
    """Every change in order, the last ``size`` kept; cursors are ``<log id>.<sequence number>``.

    The log id is new at every start: the book is regenerated from the seed then, so a cursor from an
    earlier run of the mock must not be read as a position in this one (it answers 410, like an
    expired cursor: the client's copy may hold edits this book no longer has).
    """

    def __init__(self, size: int) -> None:
        self.log_id = secrets.token_hex(4)
        self.size = size
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._dropped_through = 0  # the newest sequence number no longer kept

    def cursor(self, seq: int) -> str:
        return f"{self.log_id}.{seq}"

    @property
    def head(self) -> str:
        return self.cursor(self._seq)

    def record(self, kind: str, client_id: str, at: datetime, fields: dict[str, tuple[Any, Any]], etag: str) -> dict[str, Any]:
        if len(self._entries) == self.size:
            self._dropped_through = self._entries[0]["_seq"]
        self._seq += 1
        entry = {
            "_seq": self._seq,
            "cursor": self.cursor(self._seq),
            "kind": kind,
            "client_id": client_id,
            "changed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fields": {name: {"from": old, "to": new} for name, (old, new) in fields.items()},
            "etag": etag,
        }
        self._entries.append(entry)
        return _public(entry)

    def parse(self, cursor: str) -> int:
        """The sequence number of ``cursor``, or CursorError (malformed: not expired; foreign or too old: expired)."""
        log_id, dot, seq_text = cursor.strip().partition(".")
        if not dot or not log_id or not seq_text.isdigit():
            raise CursorError(f"cursor {cursor!r} is not a cursor of this feed (expected <log id>.<number>)", expired=False)
        seq = int(seq_text)
        if log_id != self.log_id:
            raise CursorError(
                f"cursor {cursor!r} belongs to another change log (the CRM was restarted and its book regenerated)",
                expired=True,
            )
        if seq > self._seq:
            raise CursorError(f"cursor {cursor!r} is ahead of the newest change ({self.head})", expired=True)
        if seq < self._dropped_through:
            raise CursorError(
                f"cursor {cursor!r} has expired: changes after it were dropped (the log keeps the last {self.size})",
                expired=True,
            )
        return seq

    def read(self, after: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` changes after sequence ``after`` (None: from the oldest kept), and whether more follow."""
        first_kept = self._entries[0]["_seq"] if self._entries else self._seq + 1
        start = 0 if after is None else max(0, after + 1 - first_kept)
        chosen = list(itertools.islice(self._entries, start, start + limit))
        return [_public(e) for e in chosen], start + len(chosen) < len(self._entries)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def parse_instant(raw: str) -> datetime:
    """Parse an ISO-8601 instant ("Z" or offset); a naive value is taken as UTC."""
    value = datetime.fromisoformat(raw.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- fault injection --------------------------------------------------------


class _Faults:
    """Seeded fault decisions, so the same request sequence fails the same way.

    The dropped connections after a write draw from a stream of their own (seeded by the same
    ``fault_seed``), so turning them on does not change which requests the error rate fails.
    """

    def __init__(self, settings: MockApiSettings) -> None:
        self.error_rate = settings.error_rate
        self.latency_s = settings.latency_ms / 1000.0
        self.fail_pages = settings.fail_pages
        self.drop_after_write_rate = settings.drop_after_write_rate
        self._rng = random.Random(settings.fault_seed)
        self._drop_rng = random.Random(f"drop-after-write:{settings.fault_seed}")
        self._lock = threading.Lock()

    def drop_after_write(self) -> bool:
        """Whether to drop the connection of a write just applied: one draw per write answered 2xx (not replays)."""
        with self._lock:
            draw = self._drop_rng.random()
        return draw < self.drop_after_write_rate

    async def apply(self, page: int) -> None:
        """Sleep the configured latency, then raise the injected error, if any."""
        # One draw per request whatever the outcome, so the sequence of
        # decisions depends only on the number of requests made.
        with self._lock:
            draw = self._rng.random()
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if page in self.fail_pages:
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=f"injected failure for page {page}")
        if draw < self.error_rate:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="injected fault: service temporarily unavailable",
                headers={"Retry-After": "1"},
            )


class _WriteRateLimit:
    """A token bucket of ``per_second`` writes (a burst of one second's worth); 0 means no limit.

    Only the event loop's thread calls it (no await inside), so it needs no lock.
    """

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.capacity = max(1.0, per_second)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def take(self) -> None:
        """Take one write from the bucket, or raise 429 with ``Retry-After`` (whole seconds until one is free)."""
        if self.per_second <= 0:
            return
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = (1.0 - self._tokens) / self.per_second
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"write rate limit: at most {self.per_second:g} writes per second (MOCK_CRM_WRITE_RATE_LIMIT); "
            "nothing was written, retry after Retry-After seconds",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


@dataclass(frozen=True)
class _Answer:
    """A write's answer, as sent and as stored for its Idempotency-Key."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    fingerprint: bytes = b""

    def response(self, replayed: bool = False) -> Response:
        headers = {**self.headers, "Idempotent-Replayed": "true"} if replayed else self.headers
        return Response(self.body, status_code=self.status_code, headers=headers, media_type="application/json")


class _DroppedConnection(Response):
    """The answer's status line and headers, then no body: the connection ends without a readable answer.

    Returning from the ASGI call with the response started but not complete makes uvicorn close the
    connection ("ASGI callable returned without completing response"), with either of its HTTP
    implementations: the client reads fewer bytes than Content-Length says and gets a transport
    error (httpx: ``RemoteProtocolError``), never the answer. The write was applied before.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})


class _IdempotencyKeys:
    """Answers by Idempotency-Key, least recently used dropped first (at most ``max_keys``, ``max_bytes`` of bodies)."""

    def __init__(self, max_keys: int, max_bytes: int = IDEMPOTENCY_MAX_BYTES) -> None:
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> _Answer | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: str, answer: _Answer) -> None:
        old = self._answers.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._answers[key] = answer
        self._bytes += len(answer.body)
        while len(self._answers) > self.max_keys or (self._bytes > self.max_bytes and len(self._answers) > 1):
            _, dropped = self._answers.popitem(last=False)
            self._bytes -= len(dropped.body)


def _fingerprint(method: str, path: str, if_match: str | None, body: Any) -> bytes:
    """What makes two requests "the same" for an Idempotency-Key: method, path, If-Match and the body's JSON value."""
    canonical = json.dumps([method, path, if_match, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _json_bytes(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _etag_matches(if_match: str, etag: str) -> bool:
    """``If-Match`` against the current etag: ``*``, or any of a comma list of etags, quoted or bare (``W/`` ignored)."""
    for candidate in if_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        candidate = candidate.removeprefix("W/").strip('"')
        if candidate and secrets.compare_digest(candidate.encode("utf-8"), etag.encode("utf-8")):
            return True
    return False


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        (".".join(str(part) for part in error["loc"]) + ": " if error["loc"] else "") + error["msg"].removeprefix("Value error, ")
        for error in exc.errors()
    )


_WRITE_RESULT = TypeAdapter(WriteResult)


# --- the app ----------------------------------------------------------------

# Module level on purpose: with postponed annotations FastAPI resolves the
# ``Depends(_bearer)`` annotation against module globals, not closure locals.
# auto_error=False because we raise the 401 ourselves, with our own detail.
# Module level for the same reason: the write endpoints' header parameters.
_IF_MATCH_HELP = "An etag (quoted or bare) or *: write only over that version of the record, else 412."
_IDEMPOTENCY_KEY_HELP = (
    "Makes a retry safe: the same key with the same request replays the stored answer; with another request: 422."
)
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="CRMBearer",
    description="Static API token: send `Authorization: Bearer <CRM_API_TOKEN>`.",
)


def create_app(settings: MockApiSettings | None = None) -> FastAPI:
    """Build the mock CRM app; ``settings`` default to ``MockApiSettings.from_env()``."""
    if settings is None:
        settings = MockApiSettings.from_env()
    expected_token = settings.token.encode("utf-8")
    write_token = settings.write_token.encode("utf-8")
    book = _Book(generate_clients(settings.clients, settings.seed))
    changes = _ChangeLog(settings.change_log_size)
    faults = _Faults(settings)
    rate_limit = _WriteRateLimit(settings.write_rate_limit)
    idempotency = _IdempotencyKeys(settings.idempotency_keys)
    logger.info(
        "mock CRM book ready: %d clients (seed %d), error_rate=%s latency_ms=%s fail_pages=%s, writes %s, change log keeps %d, "
        "write rate limit %s/s, drop after write %s",
        len(book), settings.seed, settings.error_rate, settings.latency_ms, sorted(settings.fail_pages),
        "enabled" if write_token else "disabled", settings.change_log_size, settings.write_rate_limit or "no",
        settings.drop_after_write_rate,
    )  # fmt: skip

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # compare_digest on bytes: constant time, and safe for non-ASCII input.
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode("utf-8"), expected_token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def require_write_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials.encode("utf-8") if credentials is not None else b""
        # both comparisons always run, in constant time: the answer's timing says nothing about either token
        is_writer = bool(write_token) and secrets.compare_digest(given, write_token)
        is_reader = secrets.compare_digest(given, expected_token)
        if is_writer:
            return
        if is_reader:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="This token may read, not write: writes need the write token (MOCK_CRM_WRITE_TOKEN)"
                if write_token
                else "This mock CRM is read-only: start it with MOCK_CRM_WRITE_TOKEN set to allow writes",
            )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )

    unauthorized: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid bearer token."}}
    write_errors: dict[int | str, dict[str, Any]] = {
        **unauthorized,
        403: {"description": "The read token (or no write token configured): writes need MOCK_CRM_WRITE_TOKEN."},
        422: {"description": "Unknown field or invalid value."},
        503: {"description": "Injected transient failure (MOCK_CRM_ERROR_RATE), before anything is written; retry."},
    }
    app = FastAPI(
        title="Mock CRM API",
        version="1.0.0",
        description="Synthetic, deliberately messy client book standing in for the real CRM. "
        "All data endpoints need a bearer token.",
    )

    @app.get(
        "/clients",
        response_model=ClientsPage,
        dependencies=[Depends(require_token)],
        summary="List clients, paginated, optionally only those updated since an instant",
        responses={
            **unauthorized,
            422: {"description": "Invalid parameter (e.g. unparseable updated_since)."},
            500: {"description": "Injected failure for a configured page (MOCK_CRM_FAIL_PAGES)."},
            503: {"description": "Injected transient failure (MOCK_CRM_ERROR_RATE); retry."},
        },
    )
    async def list_clients(
        page: Annotated[int, Query(ge=1, description="1-based page number.")] = 1,
        page_size: Annotated[
            int, Query(ge=1, description=f"Records per page; values above {MAX_PAGE_SIZE} are clamped.")
        ] = DEFAULT_PAGE_SIZE,
        updated_since: Annotated[
            str | None,
            Query(
                description="ISO-8601 instant ('Z' or offset, naive = UTC); keeps records with updated_at >= this instant.",
                examples=["2026-06-01T00:00:00Z"],
            ),
        ] = None,
    ) -> dict[str, Any]:
        since = None
        if updated_since is not None:
            try:
                since = parse_instant(updated_since)
            except (ValueError, OverflowError):  # OverflowError: e.g. year 1 with a +01:00 offset
                hint = " (a '+' in a query string must be sent as %2B)" if " " in updated_since.strip() else ""
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    detail=f"updated_since must be an ISO-8601 instant such as 2026-06-01T00:00:00Z{hint}",
                ) from None
        await faults.apply(page)

        size = min(page_size, MAX_PAGE_SIZE)
        start = book.first_index_since(since)
        total = len(book) - start
        total_pages = math.ceil(total / size)
        lo = start + (page - 1) * size
        data = book.records(lo, min(lo + size, len(book))) if page <= total_pages else []
        return {
            "data": data,
            "page": page,
            "page_size": size,
            "total": total,
            "total_pages": total_pages,
            "next_page": page + 1 if page < total_pages else None,
        }

    advisors = generate_advisors(settings.clients).to_dict(orient="records")

    @app.get(
        "/advisors",
        response_model=list[AdvisorRecord],
        dependencies=[Depends(require_token)],
        summary="The firm's advisors: coverage, capacity, active flag (small: not paginated)",
        responses=unauthorized,
    )
    async def list_advisors() -> list[dict[str, Any]]:
        return advisors

    @app.get(
        "/changes",
        response_model=ChangesPage,
        dependencies=[Depends(require_token)],
        summary="The change feed: every create, update and status change, in order, after a cursor",
        responses={
            **unauthorized,
            410: {
                "model": CursorExpired,
                "description": "The cursor expired or is from another log: pull everything, then follow `head`.",
            },
            422: {"description": "Malformed cursor."},
            503: {"description": "Injected transient failure (MOCK_CRM_ERROR_RATE); retry."},
        },
    )
    async def list_changes(
        after: Annotated[
            str | None, Query(description="A cursor from an earlier answer; omitted: from the oldest change kept.")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, description=f"Changes per page; values above {MAX_CHANGES_LIMIT} are clamped.")
        ] = DEFAULT_CHANGES_LIMIT,
    ) -> Any:
        await faults.apply(0)  # error rate and latency as on /clients (page 0: MOCK_CRM_FAIL_PAGES is for /clients)
        # No await from here on: the log cannot change between the cursor check and the read.
        try:
            seq = None if after is None else changes.parse(after)
        except CursorError as exc:
            if not exc.expired:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
            return JSONResponse(
                status_code=status.HTTP_410_GONE,
                content={"error": "cursor_expired", "detail": str(exc), "head": changes.head},
            )
        data, has_more = changes.read(seq, min(limit, MAX_CHANGES_LIMIT))
        next_cursor = data[-1]["cursor"] if data else (after if after is not None else changes.head)
        return {"data": data, "next_cursor": next_cursor, "has_more": has_more, "head": changes.head}

    @app.get(
        "/clients/{client_id}",
        response_model=ClientRecord,
        dependencies=[Depends(require_token)],
        summary="One client, as it is now (its etag also in the ETag header)",
        responses={
            **unauthorized,
            404: {"description": "No client with this id."},
            503: {"description": "Injected transient failure (MOCK_CRM_ERROR_RATE); retry."},
        },
    )
    async def get_client(client_id: str) -> Any:
        await faults.apply(0)
        row = book.row_of(client_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no client with id {client_id!r}")
        record = book.record(row)
        body = ClientRecord.model_validate(record).model_dump_json()
        return Response(body, media_type="application/json", headers={"ETag": f'"{record["etag"]}"'})

    def write(client_id: str, fields: dict[str, Any], row: int | None, at: datetime | None = None) -> dict[str, Any]:
        """Apply ``fields`` to the client at ``row`` (None: a new client) and record the change, if any.

        A change of owner_email or territory_id (on an existing client) adds one to assignment_version.
        """
        if row is not None:
            before = book.record(row)
        else:
            before = {**dict.fromkeys(RECORD_COLUMNS), "assignment_version": 0}
        after = {**before, **fields, "client_id": client_id}
        changed = {name: (before[name], after[name]) for name in fields if name == "client_id" or before[name] != after[name]}
        if row is not None and not changed:
            return {"record": before, "change": None, "etag": before["etag"]}  # same values: no new etag, no feed entry
        if row is not None and ("owner_email" in changed or "territory_id" in changed):
            after["assignment_version"] = before["assignment_version"] + 1
            changed["assignment_version"] = (before["assignment_version"], after["assignment_version"])
        at = at or _stamp_now()
        after["updated_at"], after["etag"] = book.put(after, at, row)
        kind = "create" if row is None else "status_change" if "status" in changed else "update"
        change = changes.record(kind, client_id, at, changed, after["etag"])
        logger.info("change %s: %s client %s (%s)", change["cursor"], kind, client_id, ", ".join(sorted(changed)))
        return {"record": after, "change": change, "etag": after["etag"]}

    def answer_write(result: dict[str, Any], status_code: int = status.HTTP_200_OK) -> _Answer:
        body = _WRITE_RESULT.dump_json(_WRITE_RESULT.validate_python(result), by_alias=True)
        return _Answer(status_code, body, {"ETag": f'"{result["etag"]}"'})

    def answer_json(status_code: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> _Answer:
        return _Answer(status_code, _json_bytes(content), headers or {})

    async def guarded_write(key: str | None, fingerprint_of: Callable[[], bytes], apply: Callable[[], _Answer]) -> Response:
        """The steps every write takes: rate limit, injected faults, then the Idempotency-Key, then ``apply``.

        Nothing awaits between the key's look-up and the storing of the answer, so two requests with
        the same key cannot both apply. Answers are stored unless 5xx (429 and the injected 503 never
        reach here: nothing was applied, a retry is a new attempt).
        """
        rate_limit.take()
        await faults.apply(0)  # before anything changes, so a client may retry an injected failure safely
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and key.isascii() and key.isprintable()):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
            )
        fingerprint = fingerprint_of() if key is not None else b""
        if key is not None:
            stored = idempotency.get(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    return answer_json(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        {
                            "error": "idempotency_key_reused",
                            "detail": "this Idempotency-Key was used for a different request (method, path, If-Match or "
                            "body differ); nothing was applied: use a new key for a new request",
                        },
                    ).response()
                return stored.response(replayed=True)
        answer = apply()
        if key is not None and answer.status_code < 500:
            idempotency.put(key, _Answer(answer.status_code, answer.body, answer.headers, fingerprint))
        if answer.status_code < 300 and faults.drop_after_write():
            logger.warning("injected fault: the write was handled (HTTP %d), the connection is dropped", answer.status_code)
            return _DroppedConnection(
                answer.body, status_code=answer.status_code, headers=answer.headers, media_type="application/json"
            )
        return answer.response()

    idempotent_errors: dict[int | str, dict[str, Any]] = {
        **write_errors,
        422: {"description": "Unknown field or invalid value, or an Idempotency-Key reused for a different request."},
        429: {"description": "Over MOCK_CRM_WRITE_RATE_LIMIT: nothing written; retry after Retry-After seconds."},
    }

    @app.patch(
        "/clients/{client_id}",
        response_model=WriteResult,
        dependencies=[Depends(require_write_token)],
        summary="Change a client's fields (write token); its etag and updated_at move and the change joins the feed",
        responses={
            **idempotent_errors,
            404: {"description": "No client with this id."},
            412: {"model": PreconditionFailed, "description": "If-Match is not the current etag: nothing written."},
        },
    )
    async def update_client(
        client_id: str,
        patch: ClientPatch,
        if_match: Annotated[str | None, Header(description=_IF_MATCH_HELP)] = None,
        idempotency_key: Annotated[str | None, Header(description=_IDEMPOTENCY_KEY_HELP)] = None,
    ) -> Response:
        fields = patch.model_dump(include=patch.model_fields_set)

        def apply() -> _Answer:
            row = book.row_of(client_id)
            if row is None:
                return answer_json(status.HTTP_404_NOT_FOUND, {"detail": f"no client with id {client_id!r}"})
            current = book.etag_of(row)
            if if_match is not None and not _etag_matches(if_match, current):
                return answer_json(
                    status.HTTP_412_PRECONDITION_FAILED,
                    {
                        "error": "precondition_failed",
                        "detail": f"If-Match {if_match!r} is not the client's current etag: it changed since it was read; "
                        "nothing was written",
                        "client_id": client_id,
                        "etag": current,
                    },
                    {"ETag": f'"{current}"'},
                )
            return answer_write(write(client_id, fields, row))

        return await guarded_write(
            idempotency_key, lambda: _fingerprint("PATCH", f"/clients/{client_id}", if_match, fields), apply
        )

    @app.post(
        "/clients/bulk-assign",
        response_model=BulkAssignResult,
        dependencies=[Depends(require_write_token)],
        summary=f"Set owner_email and territory_id of up to {MAX_BULK_RECORDS} clients, answered per record (write token)",
        description="Records are applied in order, each on its own: a record that is invalid, not found or in conflict "
        "(its if_match is stale) is not written and does not stop the others. Each written record gets a new etag, "
        "a new updated_at and a feed entry; a record that sets the current values is ok and changes nothing.",
        responses={
            **idempotent_errors,
            413: {"description": f"More than {MAX_BULK_RECORDS} records: nothing applied; split the batch."},
        },
    )
    async def bulk_assign(
        request_body: BulkAssign,
        idempotency_key: Annotated[str | None, Header(description=_IDEMPOTENCY_KEY_HELP)] = None,
    ) -> Response:
        records = request_body.records
        if len(records) > MAX_BULK_RECORDS:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                detail=f"at most {MAX_BULK_RECORDS} records per request, got {len(records)}: nothing was applied; "
                "split the batch",
            )

        def assign(item: Any, at: datetime) -> dict[str, Any]:
            raw_id = item.get("client_id") if isinstance(item, dict) else None
            client_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
            row = book.row_of(raw_id) if isinstance(raw_id, str) else None
            outcome: dict[str, Any] = {
                "client_id": client_id,
                "status": "ok",
                "changed": False,
                "etag_before": book.etag_of(row) if row is not None else None,
                "etag_after": None,
                "assignment_version": book.version_of(row) if row is not None else None,
                "error": None,
            }
            try:
                wanted = AssignmentWrite.model_validate(item)
            except ValidationError as exc:
                return {**outcome, "status": "invalid", "error": _validation_message(exc)}
            if row is None:
                return {**outcome, "status": "not_found", "error": f"no client with id {wanted.client_id!r}"}
            if wanted.if_match is not None and not _etag_matches(wanted.if_match, outcome["etag_before"]):
                return {
                    **outcome,
                    "status": "conflict",
                    "error": f"if_match {wanted.if_match!r} is stale: the client's etag is {outcome['etag_before']!r}",
                }
            done = write(
                wanted.client_id, wanted.model_dump(include={"owner_email", "territory_id"} & wanted.model_fields_set), row, at
            )
            return {
                **outcome,
                "changed": done["change"] is not None,
                "etag_after": done["etag"],
                "assignment_version": done["record"]["assignment_version"],
            }

        def apply() -> _Answer:
            at = _stamp_now()  # one instant for the whole batch
            results = [assign(item, at) for item in records]
            counts = dict.fromkeys(("ok", "conflict", "invalid", "not_found"), 0)
            for result in results:
                counts[result["status"]] += 1
            logger.info("bulk assignment of %d record(s): %s", len(results), counts)
            return answer_json(status.HTTP_200_OK, {"results": results, "counts": counts})

        return await guarded_write(idempotency_key, lambda: _fingerprint("POST", "/clients/bulk-assign", None, records), apply)

    @app.post(
        "/clients",
        response_model=WriteResult,
        status_code=status.HTTP_201_CREATED,
        dependencies=[Depends(require_write_token)],
        summary="Create a client (write token); it joins the feed as a create",
        responses={**idempotent_errors, 409: {"description": "A client with this id exists."}},
    )
    async def create_client(
        new: ClientCreate,
        idempotency_key: Annotated[str | None, Header(description=_IDEMPOTENCY_KEY_HELP)] = None,
    ) -> Response:
        given = new.model_dump(include=new.model_fields_set)

        def apply() -> _Answer:
            client_id = new.client_id or book.next_numeric_id()
            if book.row_of(client_id) is not None:
                return answer_json(status.HTTP_409_CONFLICT, {"detail": f"a client with id {client_id!r} exists"})
            fields = new.model_dump(exclude={"client_id"})
            if "owner_email" not in new.model_fields_set and is_valid_email(new.advisor_email):
                fields["owner_email"] = new.advisor_email  # as in the generated book: the advisor owns the client
            return answer_write(write(client_id, fields, None), status.HTTP_201_CREATED)

        return await guarded_write(idempotency_key, lambda: _fingerprint("POST", "/clients", None, given), apply)

    @app.get(
        "/health",
        response_model=Health,
        dependencies=[Depends(require_token)],
        summary="Liveness and book size (no fault injection)",
        responses=unauthorized,
    )
    async def health() -> dict[str, Any]:
        return {"status": "ok", "clients": len(book)}

    return app


assert tuple(ClientRecord.model_fields) == RECORD_COLUMNS, "API record model out of sync with the generator"


def __getattr__(name: str) -> Any:
    """Build ``app`` from the environment on first access (PEP 562)."""
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
