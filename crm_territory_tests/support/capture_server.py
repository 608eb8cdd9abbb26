"""The attacker's server of issue 10, finding 3: ``with run_capture_server() as capture``.

A real HTTP server on 127.0.0.1 that answers GETs like the CRM API would (an empty page of ``/clients``, an
empty list otherwise) and records each request's path and Authorization header, so a test can assert that
nothing, and above all no token, was sent to it. The ``capture`` fixture in ``crm_territory_tests/conftest.py``
yields one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

__all__ = ["CapturedRequest", "CaptureServer", "run_capture_server"]


class CapturedRequest(NamedTuple):
    path: str
    authorization: str | None


class CaptureServer:
    """Records every request it receives in ``requests``; ``url`` is its base URL."""

    def __init__(self) -> None:
        self.requests: list[CapturedRequest] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                capture.requests.append(CapturedRequest(self.path, self.headers.get("Authorization")))
                body = b'{"data": [], "next_page": null, "total": 0}' if self.path.startswith("/clients") else b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def run_capture_server() -> Iterator[CaptureServer]:
    """Serve a ``CaptureServer`` on a thread while the block runs; shut it down and close its socket after."""
    server = CaptureServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
