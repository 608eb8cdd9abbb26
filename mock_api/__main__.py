"""Command line: ``python -m mock_api [--host H] [--port P] [--clients N] ...``.

Flags override the ``MOCK_CRM_*`` environment variables; the tokens only come
from ``CRM_API_TOKEN`` and ``MOCK_CRM_WRITE_TOKEN`` (a flag would leak them into
``ps`` output and shell history). ``--write-rate-limit``, ``--drop-after-write-rate``
and ``--idempotency-keys`` shape how the book takes writes (see ``mock_api.app``).
Binds to 127.0.0.1 unless ``--host`` says otherwise, since the API serves client
data with a static token.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence

import uvicorn

from mock_api.app import MockApiConfigError, MockApiSettings, create_app, parse_fail_pages


class _AnnouncingServer(uvicorn.Server):
    """uvicorn server that prints the one-line banner once it is really listening.

    Printing after the bind (rather than before ``run``) means a script can wait
    for the line, and ``--port 0`` shows the port the OS actually picked.
    """

    def __init__(self, config: uvicorn.Config, clients: int) -> None:
        super().__init__(config)
        self._clients = clients

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        host, port = self.config.host, self.config.port
        for server in getattr(self, "servers", []):
            for sock in server.sockets or ():
                port = sock.getsockname()[1]
                break
        print(f"mock CRM API on http://{host}:{port} ({self._clients} clients)", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mock_api",
        description="Serve the synthetic CRM client book over HTTP. Requires CRM_API_TOKEN in the environment.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 = any free port)")
    parser.add_argument("--clients", type=int, help="book size (env MOCK_CRM_CLIENTS, default 2000)")
    parser.add_argument("--seed", type=int, help="book seed (env MOCK_CRM_SEED, default 42)")
    parser.add_argument(
        "--error-rate",
        type=float,
        help="fraction of requests to /clients, /changes and the writes answered 503, before anything is written "
        "(env MOCK_CRM_ERROR_RATE)",
    )
    parser.add_argument("--fault-seed", type=int, help="seed of the fault RNG (env MOCK_CRM_FAULT_SEED, default 0)")
    parser.add_argument(
        "--latency-ms", type=float, help="delay added to each /clients, /changes and write request (env MOCK_CRM_LATENCY_MS)"
    )
    parser.add_argument("--fail-pages", help='comma list of pages that always answer 500, e.g. "3" (env MOCK_CRM_FAIL_PAGES)')
    parser.add_argument(
        "--change-log-size", type=int, help="changes the feed keeps (env MOCK_CRM_CHANGE_LOG_SIZE, default 10000)"
    )
    parser.add_argument(
        "--write-rate-limit",
        type=float,
        help="writes per second before 429 with Retry-After (env MOCK_CRM_WRITE_RATE_LIMIT, default 0: no limit)",
    )
    parser.add_argument(
        "--drop-after-write-rate",
        type=float,
        help="fraction of writes applied, then answered with a dropped connection (env MOCK_CRM_DROP_AFTER_WRITE_RATE, "
        "default 0; seeded by the fault seed)",
    )
    parser.add_argument(
        "--idempotency-keys",
        type=int,
        help="Idempotency-Key answers remembered, least recently used dropped (env MOCK_CRM_IDEMPOTENCY_KEYS, default 100000)",
    )
    parser.add_argument(
        "--exit-with-parent",
        type=int,
        metavar="PID",
        help="stop when process PID is gone (what `make run` passes: a killed run must not leave the API running)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (default: warning; 'info' adds access logs)",
    )
    return parser


def _exit_when_gone(pid: int, every_seconds: float = 0.5) -> None:
    """A watcher thread: when ``pid`` is gone (even killed with SIGKILL, which no handler sees), exit at once."""

    def watch() -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # alive, owned by someone else
            time.sleep(every_seconds)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def settings_from_args(args: argparse.Namespace) -> MockApiSettings:
    """Environment first, then every flag that was given replaces its variable."""
    settings = MockApiSettings.from_env()
    overrides = {
        name: getattr(args, name)
        for name in (
            "clients",
            "seed",
            "error_rate",
            "fault_seed",
            "latency_ms",
            "change_log_size",
            "write_rate_limit",
            "drop_after_write_rate",
            "idempotency_keys",
        )
        if getattr(args, name) is not None
    }
    if args.fail_pages is not None:
        overrides["fail_pages"] = parse_fail_pages(args.fail_pages)
    # replace() re-runs the validation in __post_init__.
    return dataclasses.replace(settings, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except MockApiConfigError as exc:
        print(f"mock_api: {exc}", file=sys.stderr)
        return 2
    if args.exit_with_parent:
        _exit_when_gone(args.exit_with_parent)
    app = create_app(settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    server = _AnnouncingServer(config, clients=settings.clients)
    server.run()
    # uvicorn leaves started=False when it could not bind or start up.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
