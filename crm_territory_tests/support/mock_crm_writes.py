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

from crm_territory_tests.support import mock_api_server

__all__ = [
    "WRITE_BACK_SETTINGS",
    "WRITE_TOKEN",
    "bulk_assign",
    "get_client",
    "run_writable_mock_api",
    "set_fields",
]

#: The write token the wrapper gives the server (distinct from TEST_TOKEN, the read token).
WRITE_TOKEN = "test-write-token-not-a-secret"

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
