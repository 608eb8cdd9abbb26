"""The CRM's write endpoints over HTTP: bulk-assign and a record's read-back, with retries that are safe to make.

Every bulk request carries an ``Idempotency-Key``, so retrying it after a 5xx, a timeout or a connection dropped
after the server applied it replays the stored answer instead of writing twice. 429 waits ``Retry-After``.
The token is sent as a bearer header and never appears in a message or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

RETRYABLE_STATUS = {500, 502, 503, 504}


class WritebackError(RuntimeError):
    """The write-back cannot go on (refused token, the CRM down after every retry, an answer it cannot read)."""


class CrmWriter:
    """``POST /clients/bulk-assign`` with a write token, ``GET /clients/{id}`` with the read token; a context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        read_token: str | None = None,
        timeout_seconds: float = 30.0,
        max_retries: int = 6,
        backoff_seconds: float = 0.25,
        max_backoff_seconds: float = 8.0,
        max_rate_limited: int = 100,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise WritebackError("no CRM write token: set CRM_WRITE_TOKEN (a token with write scope) in the environment")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_rate_limited = max_rate_limited
        self.log = log
        self.sleep = sleep
        self.requests = 0  # requests sent, retries included
        self._read_headers = {"Authorization": f"Bearer {read_token}"} if read_token else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_seconds,
        )

    def __enter__(self) -> CrmWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _refused(self, response: httpx.Response, what: str) -> WritebackError:
        if response.status_code == 401:
            return WritebackError(
                f"CRM at {self.base_url} refused the write token (HTTP 401) on {what}: check CRM_WRITE_TOKEN. Nothing was written."
            )
        if response.status_code == 403:
            return WritebackError(
                f"CRM at {self.base_url} refused {what} (HTTP 403): the token has no write scope. Set CRM_WRITE_TOKEN to a "
                "token with write scope (CRM_API_TOKEN is read-only). Nothing was written."
            )
        return WritebackError(f"CRM at {self.base_url} answered HTTP {response.status_code} on {what}: {response.text[:300]}")

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """The request, retried on 5xx, timeouts and transport errors (backoff) and 429 (Retry-After)."""
        problems = 0
        rate_limited = 0
        while True:
            self.requests += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code == 429:
                    rate_limited += 1
                    if rate_limited > self.max_rate_limited:
                        raise WritebackError(
                            f"CRM at {self.base_url}: {what} rate-limited {rate_limited} times in a row; re-run later "
                            "(the apply resumes where it stopped)"
                        )
                    wait = _retry_after(response, self.backoff_seconds)
                    self.sleep(min(wait, 60.0))
                    continue
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
            problems += 1
            if problems > self.max_retries:
                raise WritebackError(
                    f"CRM at {self.base_url}: {what} still failed after {self.max_retries} retries (last: {problem}). "
                    "Check the CRM (CRM_API_URL) and re-run: the apply resumes where it stopped, sending nothing twice."
                )
            delay = min(self.backoff_seconds * 2 ** (problems - 1), self.max_backoff_seconds)
            self.log(f"CRM write-back {what}: {problem}; retry {problems}/{self.max_retries} in {delay:.2f}s")
            self.sleep(delay)

    def bulk_assign(self, records: list[dict], idempotency_key: str, what: str) -> list[dict]:
        """The per-record answers of one bulk-assign request (in the order sent), or WritebackError."""
        response = self._send(
            "POST", "/clients/bulk-assign", what, json={"records": records}, headers={"Idempotency-Key": idempotency_key}
        )
        if response.status_code != 200:
            raise self._refused(response, what)
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WritebackError(f"CRM {what}: the answer is not the expected JSON ({exc})") from exc
        if not isinstance(results, list) or len(results) != len(records):
            raise WritebackError(f"CRM {what}: {len(records)} records sent, the answer does not hold one result per record")
        return results

    def get_client(self, client_id: str) -> dict | None:
        """The record as the CRM holds it now (None: not found)."""
        response = self._send("GET", f"/clients/{client_id}", f"read-back of client {client_id}", headers=self._read_headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response, f"read-back of client {client_id}")
        return response.json()


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default
