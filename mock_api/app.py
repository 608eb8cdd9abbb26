"""FastAPI app that serves the synthetic client book like the real CRM would.

It exists so the engine's HTTP source can be exercised end to end (auth,
pagination, incremental ``updated_since`` pulls, retries) without the real
CRM. Faults are injectable and seeded so a flaky-network test is repeatable.

``create_app(settings)`` builds an app explicitly (tests, ``python -m
mock_api``). The module attribute ``app`` (for ``uvicorn mock_api.app:app``)
is built lazily from the environment on first access, so merely importing
this module never requires ``CRM_API_TOKEN``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from mock_api.generator import CLIENT_COLUMNS, generate_advisors, generate_clients

__all__ = [
    "MAX_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "MockApiConfigError",
    "MockApiSettings",
    "create_app",
]

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
#: Larger page sizes are clamped (not rejected), like most CRM APIs do; the
#: response's ``page_size`` tells the client what it actually got.
MAX_PAGE_SIZE = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class MockApiConfigError(ValueError):
    """Settings are missing or invalid; the message says which variable to fix."""


@dataclass(frozen=True)
class MockApiSettings:
    """Everything that shapes one mock API instance.

    ``token`` is excluded from ``repr`` so settings can be logged or shown in
    a failing assertion without leaking the secret.
    """

    token: str = field(repr=False)
    clients: int = 2000
    seed: int = 42
    error_rate: float = 0.0
    fault_seed: int = 0
    latency_ms: float = 0.0
    fail_pages: frozenset[int] = frozenset()

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockApiSettings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Variables: ``CRM_API_TOKEN`` (required), ``MOCK_CRM_CLIENTS``,
        ``MOCK_CRM_SEED``, ``MOCK_CRM_ERROR_RATE``, ``MOCK_CRM_FAULT_SEED``,
        ``MOCK_CRM_LATENCY_MS``, ``MOCK_CRM_FAIL_PAGES`` (e.g. "3" or "2,5").
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
    book = _Book(generate_clients(settings.clients, settings.seed))
    faults = _Faults(settings)
    logger.info(
        "mock CRM book ready: %d clients (seed %d), error_rate=%s latency_ms=%s fail_pages=%s",
        len(book), settings.seed, settings.error_rate, settings.latency_ms, sorted(settings.fail_pages),
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

    unauthorized = {401: {"description": "Missing or invalid bearer token."}}
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
