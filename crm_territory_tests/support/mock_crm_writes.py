"""The mock CRM with writes enabled, for the change-feed tests: ``with run_writable_mock_api() as url``.

``run_mock_api`` (``mock_api_server``) passes only the settings it knows and drops inherited
``MOCK_CRM_*`` variables, so it cannot yet give the server a write token or a change-log size. Until it
lists ``write_token`` and ``change_log_size`` itself, this wrapper adds them to its table of settings for
as long as the server runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import httpx

from crm_territory_tests.support import mock_api_server

__all__ = ["WRITE_TOKEN", "run_writable_mock_api", "set_fields"]

#: The write token the wrapper gives the server (distinct from TEST_TOKEN, the read token).
WRITE_TOKEN = "test-write-token-not-a-secret"

_WRITE_SETTINGS = {"write_token": "MOCK_CRM_WRITE_TOKEN", "change_log_size": "MOCK_CRM_CHANGE_LOG_SIZE"}


@contextmanager
def run_writable_mock_api(*, write_token: str = WRITE_TOKEN, **settings: Any) -> Iterator[str]:
    """``run_mock_api`` plus ``write_token`` (MOCK_CRM_WRITE_TOKEN) and an optional ``change_log_size``."""
    with (
        patch.dict(mock_api_server._SETTING_ENV, _WRITE_SETTINGS),
        mock_api_server.run_mock_api(write_token=write_token, **settings) as url,
    ):
        yield url


def set_fields(base_url: str, client_id: str, token: str = WRITE_TOKEN, **fields: Any) -> httpx.Response:
    """PATCH /clients/{client_id} with ``fields``, as the change script does."""
    return httpx.patch(f"{base_url}/clients/{client_id}", json=fields, headers=mock_api_server.auth_headers(token), timeout=10.0)
