"""Client for the CRM API: bearer token from the environment, timeouts, retries with backoff.

A page that still fails after the retries raises ``CrmApiError`` naming the page, the status and
what to do next; nothing is returned, so a failed pull never becomes a partial load.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import httpx
import pandas as pd

from crm_territory.resources.fixed_at_load import FixedAtLoad

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class CrmApiError(RuntimeError):
    """The CRM API could not deliver a page."""


class ChangeFeedExpired(CrmApiError):
    """The change feed cannot continue from the cursor (HTTP 410): changes after it are gone.

    ``head`` is the feed's newest cursor: after a full pull, follow the feed from there.
    """

    def __init__(self, message: str, head: str | None) -> None:
        super().__init__(message)
        self.head = head


@dataclass(frozen=True)
class ChangeBatch:
    """Changes read from the feed, oldest first, and the cursor to read the next ones from."""

    changes: list[dict]
    cursor: str | None
    more: bool  # the read stopped at its limit with changes still waiting


class CrmApiResource(FixedAtLoad, dg.ConfigurableResource):
    """The CRM API's ``/clients`` endpoint, paginated, with an optional ``updated_since`` filter.

    ``base_url`` and ``token`` are fixed when the definitions load (``FixedAtLoad``): no run config can
    send the token elsewhere.
    """

    base_url: str
    token: str
    page_size: int = 500
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_seconds: float = 0.5

    def _get_json(self, client: httpx.Client, path: str, params: dict, what: str, log: Callable[[str], None]):
        """GET with retries on 429/5xx, timeouts and connection errors; the parsed JSON, or CrmApiError."""
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log(f"CRM API {what}: {last_problem}; retry {attempt}/{self.max_retries} in {delay:.1f}s")
                time.sleep(delay)
            try:
                response = client.get(path, params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRYABLE_STATUS:
                last_problem = f"HTTP {response.status_code}"
                continue
            if response.status_code == 401:
                raise CrmApiError(
                    f"CRM API at {self.base_url} refused the token (HTTP 401) on {what}. "
                    "Check CRM_API_TOKEN in the environment of the run."
                )
            if response.status_code >= 400:
                raise CrmApiError(
                    f"CRM API at {self.base_url} answered HTTP {response.status_code} on {what}: {response.text[:200]}"
                )
            try:
                return response.json()
            except ValueError as exc:
                raise CrmApiError(f"CRM API {what}: the answer is not JSON ({exc})") from exc
        raise CrmApiError(
            f"CRM API at {self.base_url}: {what} still failed after {self.max_retries} retries "
            f"(last: {last_problem}). Nothing was loaded. Check that the API is up (CRM_API_URL) and re-run."
        )

    def _get_page(self, client: httpx.Client, page: int, params: dict, log: Callable[[str], None]) -> dict:
        body = self._get_json(client, "/clients", {**params, "page": page}, f"page {page}", log)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise CrmApiError(f"CRM API page {page}: the answer is not the expected JSON (an object with a 'data' list)")
        return body

    def fetch_advisors(self, log: Callable[[str], None] = lambda _: None) -> list[dict]:
        """The advisor roster from ``/advisors`` (small, one request), or CrmApiError."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout_seconds) as client:
            body = self._get_json(client, "/advisors", {}, "/advisors", log)
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise CrmApiError("CRM API /advisors: the answer is not a list of advisor objects")
        return body

    def fetch_clients(
        self, updated_since: pd.Timestamp | None = None, log: Callable[[str], None] = lambda _: None
    ) -> list[tuple[int, list[dict]]]:
        """Every page of ``/clients`` as [(page, records)], or an exception: never a partial result.

        Pages are offsets over a moving book: a record updated during the pull moves to the end and
        shifts the others, so one may be skipped. The pull is complete when it holds as many
        distinct records as page 1 announced; otherwise it is repeated once, then refused.
        """
        for attempt in (1, 2):
            pages, announced = self._fetch_pages(updated_since, log)
            ids = {r.get("client_id") for _, records in pages for r in records if r.get("client_id") is not None}
            unkeyed = sum(1 for _, records in pages for r in records if r.get("client_id") is None)
            if announced is None or len(ids) + unkeyed >= announced:
                return pages
            log(
                f"CRM API: page 1 announced {announced} records but the pages held {len(ids) + unkeyed} distinct ones "
                f"(the book changed during the pull); pulling again ({attempt}/2)"
            )
        raise CrmApiError(
            f"CRM API at {self.base_url}: the book kept changing during the pull ({announced} records announced, "
            f"{len(ids) + unkeyed} received). Nothing was loaded; re-run when the CRM is quieter."
        )

    def _fetch_pages(
        self, updated_since: pd.Timestamp | None, log: Callable[[str], None]
    ) -> tuple[list[tuple[int, list[dict]]], int | None]:
        params: dict = {"page_size": self.page_size}
        if updated_since is not None:
            params["updated_since"] = updated_since.isoformat()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        pages: list[tuple[int, list[dict]]] = []
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout_seconds) as client:
            page: int | None = 1
            announced: int | None = None
            while page is not None:
                body = self._get_page(client, page, params, log)
                if page == 1 and isinstance(body.get("total"), int):
                    announced = body["total"]
                pages.append((page, body["data"]))
                total_pages = body.get("total_pages")
                if page == 1 or page % 20 == 0:
                    log(f"CRM API: page {page}/{total_pages or '?'} ({body.get('total', '?')} records match)")
                next_page = body.get("next_page")
                if next_page is not None and next_page <= page:
                    raise CrmApiError(f"CRM API page {page}: next_page {next_page} does not advance; stopping")
                page = next_page
        return pages, announced

    def fetch_changes(
        self, after: str | None, max_changes: int = 5000, log: Callable[[str], None] = lambda _: None
    ) -> ChangeBatch:
        """The change feed (``/changes``) after cursor ``after`` (None: from its oldest change kept).

        Pages are read until the feed is drained or ``max_changes`` are held (``more`` says so), each
        with the same retries as ``/clients``. An expired or foreign cursor raises ChangeFeedExpired;
        any other failure CrmApiError, so a caller never advances its cursor on a partial answer.
        """
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

        def recognise_gap(response: httpx.Response) -> None:
            # A response hook, so _get_json's retries stay the one retry loop: it runs before any status
            # is judged, and the exception passes through (it is not an httpx transport error).
            if response.status_code != 410:
                return
            response.read()
            try:
                body = response.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            head = body.get("head") if isinstance(body.get("head"), str) else None
            raise ChangeFeedExpired(
                f"CRM API change feed at {self.base_url} cannot continue from cursor {after!r} (HTTP 410): "
                f"{body.get('detail') or 'the cursor expired'}",
                head,
            )

        changes: list[dict] = []
        cursor = after
        more = True
        with httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self.timeout_seconds,
            event_hooks={"response": [recognise_gap]},
        ) as client:
            while more and len(changes) < max_changes:
                params: dict = {"limit": min(self.page_size, 1000, max_changes - len(changes))}
                if cursor is not None:
                    params["after"] = cursor
                body = self._get_json(client, "/changes", params, f"/changes after {cursor!r}", log)
                if not (
                    isinstance(body, dict)
                    and isinstance(body.get("data"), list)
                    and isinstance(body.get("next_cursor"), str)
                    and isinstance(body.get("has_more"), bool)
                ):
                    raise CrmApiError(
                        "CRM API /changes: the answer is not the expected JSON (an object with 'data', 'next_cursor', 'has_more')"
                    )
                if body["has_more"] and not body["data"]:
                    raise CrmApiError(f"CRM API /changes after {cursor!r}: has_more with no changes; stopping")
                changes.extend(body["data"])
                cursor, more = body["next_cursor"], body["has_more"]
        return ChangeBatch(changes=changes, cursor=cursor, more=more)
