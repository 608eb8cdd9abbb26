"""The mock CRM with writes enabled, for the change-feed tests: ``with run_writable_mock_api() as url``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from crm_territory_tests.support import mock_api_server

__all__ = ["WRITE_TOKEN", "run_writable_mock_api", "set_fields"]

#: The write token the wrapper gives the server (distinct from TEST_TOKEN, the read token).
WRITE_TOKEN = "test-write-token-not-a-secret"


@contextmanager
def run_writable_mock_api(*, write_token: str = WRITE_TOKEN, **settings: Any) -> Iterator[str]:
    """``run_mock_api`` plus ``write_token`` (MOCK_CRM_WRITE_TOKEN) and an optional ``change_log_size``."""
    with mock_api_server.run_mock_api(write_token=write_token, **settings) as url:
        yield url


def set_fields(base_url: str, client_id: str, token: str = WRITE_TOKEN, **fields: Any) -> httpx.Response:
    """PATCH /clients/{client_id} with ``fields``, as the change script does."""
    return httpx.patch(f"{base_url}/clients/{client_id}", json=fields, headers=mock_api_server.auth_headers(token), timeout=10.0)
