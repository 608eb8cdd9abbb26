"""Start the mock CRM API as a real server for tests: ``with run_mock_api() as url``.

The API runs as its own process (``python -m mock_api``), exactly as a
developer or CI would run it, so tests exercise real sockets, uvicorn and the
environment-variable handling. Usage::

    from crm_territory_tests.support.mock_api_server import TEST_TOKEN, run_mock_api

    with run_mock_api(clients=500, error_rate=0.2, fault_seed=1) as base_url:
        httpx.get(f"{base_url}/clients", headers={"Authorization": f"Bearer {TEST_TOKEN}"})

Keyword settings are either ``MockApiSettings`` field names (``clients``,
``seed``, ``error_rate``, ``fault_seed``, ``latency_ms``, ``fail_pages`` -- a
string like "2,3" or an iterable of ints --, ``write_token``, ``change_log_size``) or raw variable names
(``MOCK_CRM_ERROR_RATE="0.5"``). Inherited ``MOCK_CRM_*`` variables are
dropped so the outer environment cannot change a test's server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = ["TEST_TOKEN", "auth_headers", "free_port", "run_mock_api"]

#: Token the helper gives the server unless the caller passes ``token=``.
TEST_TOKEN = "test-token-not-a-secret"

_REPO_ROOT = Path(__file__).resolve().parents[2]
_SETTING_ENV = {
    "clients": "MOCK_CRM_CLIENTS",
    "seed": "MOCK_CRM_SEED",
    "error_rate": "MOCK_CRM_ERROR_RATE",
    "fault_seed": "MOCK_CRM_FAULT_SEED",
    "latency_ms": "MOCK_CRM_LATENCY_MS",
    "fail_pages": "MOCK_CRM_FAIL_PAGES",
    "write_token": "MOCK_CRM_WRITE_TOKEN",  # writes (PATCH/POST /clients) are refused without it
    "change_log_size": "MOCK_CRM_CHANGE_LOG_SIZE",  # how many changes GET /changes keeps
}


def auth_headers(token: str = TEST_TOKEN) -> dict[str, str]:
    """Headers that authenticate against a server started with ``token``."""
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (another process may take it before the caller binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in value)
    return str(value)


def _server_env(token: str, settings_env: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_CRM_")}
    env["CRM_API_TOKEN"] = token
    # The repo root first, so the checkout's mock_api is served even if another
    # copy is installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in settings_env.items():
        name = _SETTING_ENV.get(key, key)
        if name not in _SETTING_ENV.values():
            raise TypeError(f"run_mock_api: unknown setting {key!r}; use one of {sorted(_SETTING_ENV)}")
        env[name] = _env_value(value)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_healthy(proc: subprocess.Popen[bytes], base_url: str, token: str, deadline: float) -> bool:
    """Poll /health until 200; False if the process died or the deadline passed."""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.get(f"{base_url}/health", headers=auth_headers(token)).status_code == 200:
                    return True
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
    return False


@contextmanager
def run_mock_api(*, token: str = TEST_TOKEN, startup_timeout: float = 20.0, **settings_env: Any) -> Iterator[str]:
    """Run ``python -m mock_api`` on a free 127.0.0.1 port; yield its base URL.

    Waits until ``/health`` answers 200 with ``token`` (up to
    ``startup_timeout`` seconds) and terminates the server on exit. Server
    output goes to a temporary file whose content is included in the error
    if start-up fails.
    """
    env = _server_env(token, settings_env)
    with tempfile.TemporaryFile(prefix="mock_api_", suffix=".log") as log:
        deadline = time.monotonic() + startup_timeout
        attempts = 0
        while True:
            attempts += 1
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "mock_api", "--host", "127.0.0.1", "--port", str(port)],
                cwd=_REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                healthy = _wait_healthy(proc, base_url, token, deadline)
            except BaseException:
                _stop(proc)
                raise
            if healthy:
                break
            _stop(proc)
            log.seek(0)
            output = log.read().decode("utf-8", errors="replace")
            # Another process may grab the port between free_port() and the
            # bind; that race is worth one more try, nothing else is.
            if "address already in use" in output.lower() and attempts < 3 and time.monotonic() < deadline:
                continue
            raise RuntimeError(
                f"mock API did not become healthy on {base_url} within {startup_timeout:.0f}s "
                f"(exit code {proc.returncode}). Server output:\n{output}"
            )
        try:
            yield base_url
        finally:
            _stop(proc)
