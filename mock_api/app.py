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

``create_app(settings)`` builds an app explicitly (tests, ``python -m
mock_api``). The module attribute ``app`` (for ``uvicorn mock_api.app:app``)
is built lazily from the environment on first access, so merely importing
this module never requires ``CRM_API_TOKEN``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from mock_api.generator import CLIENT_COLUMNS, generate_advisors, generate_clients

__all__ = [
    "MAX_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_CHANGE_LOG_SIZE",
    "MAX_CHANGES_LIMIT",
    "MockApiConfigError",
    "MockApiSettings",
    "create_app",
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class MockApiConfigError(ValueError):
    """Settings are missing or invalid; the message says which variable to fix."""


@dataclass(frozen=True)
class MockApiSettings:
    """Everything that shapes one mock API instance.

    ``token`` and ``write_token`` are excluded from ``repr`` so settings can be
    logged or shown in a failing assertion without leaking a secret. An empty
    ``write_token`` means the book is read-only (writes answer 403).
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockApiSettings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Variables: ``CRM_API_TOKEN`` (required), ``MOCK_CRM_CLIENTS``,
        ``MOCK_CRM_SEED``, ``MOCK_CRM_ERROR_RATE``, ``MOCK_CRM_FAULT_SEED``,
        ``MOCK_CRM_LATENCY_MS``, ``MOCK_CRM_FAIL_PAGES`` (e.g. "3" or "2,5"),
        ``MOCK_CRM_WRITE_TOKEN`` (unset: read-only), ``MOCK_CRM_CHANGE_LOG_SIZE``.
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


class ClientCreate(ClientPatch):
    client_id: str | None = Field(default=None, min_length=1, max_length=64, description="Omitted: the next free numeric id.")
    client_name: str | None = Field(description="Organisation name (required, may be null like in the book).")
    status: Literal["active", "inactive"] = "active"


class WriteResult(BaseModel):
    record: ClientRecord
    change: Change | None = Field(description="The change recorded, null when the write changed nothing.")


class Health(BaseModel):
    status: str
    clients: int


# --- the book ---------------------------------------------------------------


class _Book:
    """The client book sorted by (updated_at, client_id), built once per app.

    Sorting by update time makes the ``updated_since`` filter a binary search
    (matching records are a suffix) and keeps pagination stable.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        ts = pd.to_datetime(frame["updated_at"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
        # Integer microseconds since the epoch: comparable with any parsed
        # ``updated_since`` (even year 9999, which a ns Timestamp cannot hold).
        micros = (ts.astype("int64") // 1000).to_numpy()
        # Numeric tiebreak so the order stays right when ids reach 7 digits.
        order = np.lexsort((frame["client_id"].astype("int64").to_numpy(), micros))
        self.updated_micros = micros[order]
        # Sorted columns, turned into dicts only for the page being served:
        # converting a 1M-row book to dicts up front would take ~10 s.
        self._columns = [frame[name].to_numpy(dtype=object)[order] for name in CLIENT_COLUMNS]

    def __len__(self) -> int:
        return len(self.updated_micros)

    def records(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Records ``lo:hi`` (in served order) as JSON-ready dicts; ``None`` stays null."""
        return [dict(zip(CLIENT_COLUMNS, row)) for row in zip(*(col[lo:hi] for col in self._columns))]

    def first_index_since(self, since: datetime | None) -> int:
        if since is None:
            return 0
        key = (since - _EPOCH) // _MICROSECOND
        return int(np.searchsorted(self.updated_micros, key, side="left"))

    def index_of(self, client_id: str) -> int | None:
        # A linear scan: writes come from people and tests, a few per second at most.
        found = np.flatnonzero(self._columns[_ID] == client_id)
        return int(found[0]) if len(found) else None

    def put(self, record: dict[str, Any], at: datetime, replace: int | None) -> None:
        """Store ``record`` stamped ``at``, replacing row ``replace`` (or adding a row when None).

        The row moves to its place in update order, so ``updated_since`` stays a suffix: an edited
        client is what the next incremental pull sees.
        """
        micros = (at - _EPOCH) // _MICROSECOND
        record = {**record, "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        stamps, columns = self.updated_micros, self._columns
        if replace is not None:
            stamps = np.delete(stamps, replace)
            columns = [np.delete(col, replace) for col in columns]
        # side="right": after every record of the same second, like the (updated_at, client_id) order for a new id
        pos = int(np.searchsorted(stamps, micros, side="right"))
        self.updated_micros = np.insert(stamps, pos, micros)
        values = [record[name] for name in CLIENT_COLUMNS]
        self._columns = [_insert_object(col, pos, value) for col, value in zip(columns, values)]

    def next_numeric_id(self) -> str:
        ids = pd.to_numeric(pd.Series(self._columns[_ID]), errors="coerce")
        return str(int(ids.max()) + 1) if ids.notna().any() else "100001"


_ID = CLIENT_COLUMNS.index("client_id")


def _insert_object(column: np.ndarray, pos: int, value: Any) -> np.ndarray:
    # np.insert would try to broadcast a list or tuple value: build the object array by hand
    out = np.empty(len(column) + 1, dtype=object)
    out[:pos], out[pos], out[pos + 1 :] = column[:pos], value, column[pos:]
    return out


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

    def record(self, kind: str, client_id: str, at: datetime, fields: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
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
    """Seeded fault decisions, so the same request sequence fails the same way."""

    def __init__(self, settings: MockApiSettings) -> None:
        self.error_rate = settings.error_rate
        self.latency_s = settings.latency_ms / 1000.0
        self.fail_pages = settings.fail_pages
        self._rng = random.Random(settings.fault_seed)
        self._lock = threading.Lock()

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


# --- the app ----------------------------------------------------------------

# Module level on purpose: with postponed annotations FastAPI resolves the
# ``Depends(_bearer)`` annotation against module globals, not closure locals.
# auto_error=False because we raise the 401 ourselves, with our own detail.
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
    logger.info(
        "mock CRM book ready: %d clients (seed %d), error_rate=%s latency_ms=%s fail_pages=%s, writes %s, change log keeps %d",
        len(book), settings.seed, settings.error_rate, settings.latency_ms, sorted(settings.fail_pages),
        "enabled" if write_token else "disabled", settings.change_log_size,
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

    def write(client_id: str, fields: dict[str, Any], index: int | None) -> dict[str, Any]:
        """Apply ``fields`` to the client at ``index`` (None: a new client) and record the change, if any."""
        before = book.records(index, index + 1)[0] if index is not None else dict.fromkeys(CLIENT_COLUMNS)
        after = {**before, **fields, "client_id": client_id}
        changed = {name: (before[name], after[name]) for name in fields if name == "client_id" or before[name] != after[name]}
        if index is not None and not changed:
            return {"record": before, "change": None}  # same values: no change, so no feed entry and no new updated_at
        at = _stamp_now()
        book.put(after, at, replace=index)
        kind = "create" if index is None else "status_change" if "status" in changed else "update"
        change = changes.record(kind, client_id, at, changed)
        logger.info("change %s: %s client %s (%s)", change["cursor"], kind, client_id, ", ".join(sorted(changed)))
        return {"record": {**after, "updated_at": change["changed_at"]}, "change": change}

    @app.patch(
        "/clients/{client_id}",
        response_model=WriteResult,
        dependencies=[Depends(require_write_token)],
        summary="Change a client's fields (write token); its updated_at moves and the change joins the feed",
        responses={**write_errors, 404: {"description": "No client with this id."}},
    )
    async def update_client(client_id: str, patch: ClientPatch) -> dict[str, Any]:
        await faults.apply(0)  # before anything changes, so a client may retry an injected failure safely
        index = book.index_of(client_id)
        if index is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no client with id {client_id!r}")
        return write(client_id, patch.model_dump(include=patch.model_fields_set), index)

    @app.post(
        "/clients",
        response_model=WriteResult,
        status_code=status.HTTP_201_CREATED,
        dependencies=[Depends(require_write_token)],
        summary="Create a client (write token); it joins the feed as a create",
        responses={**write_errors, 409: {"description": "A client with this id exists."}},
    )
    async def create_client(new: ClientCreate) -> dict[str, Any]:
        await faults.apply(0)
        client_id = new.client_id or book.next_numeric_id()
        if book.index_of(client_id) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"a client with id {client_id!r} exists")
        fields = new.model_dump(exclude={"client_id"})
        return write(client_id, fields, None)

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


assert tuple(ClientRecord.model_fields) == CLIENT_COLUMNS, "API record model out of sync with the generator"


def __getattr__(name: str) -> Any:
    """Build ``app`` from the environment on first access (PEP 562)."""
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
