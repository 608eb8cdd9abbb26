"""The mock CRM with writes enabled: ``with run_writable_mock_api() as url``, and small write helpers.

``run_writable_mock_api`` takes every ``run_mock_api`` setting plus the write-back's knobs
(``write_rate_limit``, ``drop_after_write_rate``, ``idempotency_keys``: see ``WRITE_BACK_SETTINGS``),
which ``run_mock_api`` does not know: with any of them the server is started here, the same way
(``python -m mock_api`` on a free port, healthy before the URL is handed out).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pandas as pd

from crm_territory.logic.writeback.client import CrmWriter
from crm_territory.logic.writeback.plan import build_plan, crm_state_from_records
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory_tests.support import mock_api_server
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, auth_headers

__all__ = [
    "ADVISORS",
    "WRITE_BACK_SETTINGS",
    "WRITE_TOKEN",
    "assert_log_and_crm_agree",
    "bulk_assign",
    "crm_book",
    "feed_writes",
    "get_client",
    "run_writable_mock_api",
    "set_fields",
    "synthetic_plan",
    "writer",
]

#: The write token the wrapper gives the server (distinct from TEST_TOKEN, the read token).
WRITE_TOKEN = "test-write-token-not-a-secret"

#: The advisors a synthetic plan assigns (known and active).
ADVISORS = ["ann.lee@northwind-advisors.com", "bo.chan@northwind-advisors.com", "cy.diaz@northwind-advisors.com"]

#: Settings of the write-back (mock_api.app) -> their environment variables.
WRITE_BACK_SETTINGS = {
    "write_rate_limit": "MOCK_CRM_WRITE_RATE_LIMIT",
    "drop_after_write_rate": "MOCK_CRM_DROP_AFTER_WRITE_RATE",
    "idempotency_keys": "MOCK_CRM_IDEMPOTENCY_KEYS",
}


@contextmanager
def run_writable_mock_api(*, write_token: str = WRITE_TOKEN, **settings: Any) -> Iterator[str]:
    """``run_mock_api`` plus ``write_token`` (MOCK_CRM_WRITE_TOKEN) and the ``WRITE_BACK_SETTINGS``."""
    extra = {WRITE_BACK_SETTINGS[name]: str(settings.pop(name)) for name in list(settings) if name in WRITE_BACK_SETTINGS}
    if not extra:
        with mock_api_server.run_mock_api(write_token=write_token, **settings) as url:
            yield url
        return
    with _run_with_env(extra, write_token=write_token, **settings) as url:
        yield url


@contextmanager
def _run_with_env(
    extra_env: dict[str, str], *, token: str = mock_api_server.TEST_TOKEN, startup_timeout: float = 20.0, **settings: Any
) -> Iterator[str]:
    """``run_mock_api`` with variables its fixed list does not accept (one retry on a port taken meanwhile)."""
    env = {**mock_api_server._server_env(token, settings), **extra_env}
    deadline = time.monotonic() + startup_timeout
    with tempfile.TemporaryFile(prefix="mock_api_", suffix=".log") as log:
        for attempt in (1, 2):
            port = mock_api_server.free_port()
            base_url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "mock_api", "--host", "127.0.0.1", "--port", str(port)],
                cwd=mock_api_server._REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                healthy = mock_api_server._wait_healthy(proc, base_url, token, deadline)
            except BaseException:
                mock_api_server._stop(proc)
                raise
            if healthy:
                break
            mock_api_server._stop(proc)
            log.seek(0)
            output = log.read().decode("utf-8", errors="replace")
            if attempt == 1 and "address already in use" in output.lower() and time.monotonic() < deadline:
                continue
            raise RuntimeError(f"mock API did not become healthy on {base_url} (exit code {proc.returncode}):\n{output}")
        try:
            yield base_url
        finally:
            mock_api_server._stop(proc)


def set_fields(base_url: str, client_id: str, token: str = WRITE_TOKEN, **fields: Any) -> httpx.Response:
    """PATCH /clients/{client_id} with ``fields``, as the change script does."""
    return httpx.patch(f"{base_url}/clients/{client_id}", json=fields, headers=mock_api_server.auth_headers(token), timeout=10.0)


def bulk_assign(client: httpx.Client, records: list[Any], **headers: str) -> httpx.Response:
    """POST /clients/bulk-assign with ``records`` on ``client`` (which carries the write token)."""
    return client.post(
        "/clients/bulk-assign", json={"records": records}, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def get_client(base_url: str, client_id: str) -> dict[str, Any]:
    """GET /clients/{client_id} with the read token: the record as it is now."""
    response = httpx.get(f"{base_url}/clients/{client_id}", headers=mock_api_server.auth_headers(), timeout=10.0)
    response.raise_for_status()
    return response.json()


# --- reading the CRM back, and plans to send it ---------------------------------------------------------------------


def _get(reader: httpx.Client, path: str, params: dict | None = None) -> dict:
    """A read, asked again while an injected fault answers 503."""
    for _ in range(50):
        response = reader.get(path, params=params)
        if response.status_code != 503:
            response.raise_for_status()
            return response.json()
    raise AssertionError(f"{path} kept answering 503")


def crm_book(url: str) -> pd.DataFrame:
    """The whole book as the CRM holds it now: client_id -> owner_email, territory_id, etag."""
    records, page = [], 1
    with httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as reader:
        while page is not None:
            body = _get(reader, "/clients", {"page": page, "page_size": 1000})
            records.extend(body["data"])
            page = body["next_page"]
    return pd.DataFrame(records).set_index("client_id")[["owner_email", "territory_id", "etag"]]


def feed_writes(url: str) -> pd.Series:
    """How many times the change feed says each client was written."""
    changes, params = [], {"limit": 1000}
    with httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as reader:
        while True:
            body = _get(reader, "/changes", params)
            changes.extend(body["data"])
            if not body["has_more"]:
                break
            params["after"] = body["next_cursor"]
    return pd.Series([c["client_id"] for c in changes], dtype=object).value_counts()


def assert_log_and_crm_agree(log: pd.DataFrame, url: str) -> pd.DataFrame:
    """Record by record: an ok record holds what it logged (and the etag it logged); a conflict holds the CRM's values."""
    last = log.drop_duplicates("crm_client_id", keep="last").set_index("crm_client_id")
    book = crm_book(url).reindex(last.index)
    ok = last["status"] == "ok"
    assert (book.loc[ok, "owner_email"].fillna("") == last.loc[ok, "owner_after"].fillna("")).all()
    assert (book.loc[ok, "territory_id"].fillna("") == last.loc[ok, "territory_after"].fillna("")).all()
    assert (book.loc[ok, "etag"] == last.loc[ok, "etag_after"]).all()
    conflict = last["status"] == "conflict"
    assert (book.loc[conflict, "owner_email"].fillna("") == last.loc[conflict, "crm_owner"].fillna("")).all()
    return book


def synthetic_plan(url: str, n: int) -> pd.DataFrame:
    """A plan moving the first ``n`` records of the CRM to new territories and advisors (as the pipeline's would)."""
    pages = CrmApiResource(base_url=url, token=TEST_TOKEN, backoff_seconds=0.01).fetch_clients()
    state = crm_state_from_records([r for _, records in pages for r in records]).sort_values("crm_client_id").head(n)
    keys = "k-" + state["crm_client_id"]
    position = pd.Series(range(len(state)), index=state.index)
    fact = pd.DataFrame(
        {
            "client_key": keys,
            "territory_id": "T_" + (position % 7).astype(str),
            "primary_advisor_email": position.map(lambda i: ADVISORS[i % 3]),
            "assignment_type": "PRIMARY",
            "is_current": True,
            "assigned_by": "rule_t",
            "advisor_reason": "assigned_new",
        }
    )
    xref = pd.DataFrame({"source_system": "crm_api", "source_record_id": state["crm_client_id"], "client_key": keys})
    advisors = pd.DataFrame({"advisor_email": ADVISORS, "active": True})
    return build_plan(state, fact, xref, advisors, pd.Timestamp.now(tz="UTC"))


def writer(url: str, token: str = WRITE_TOKEN) -> CrmWriter:
    return CrmWriter(url, token, read_token=TEST_TOKEN, backoff_seconds=0.01, max_retries=12)
