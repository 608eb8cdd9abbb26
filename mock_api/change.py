"""Edit the running mock CRM, as a person would in the real one: ``python -m mock_api.change ...``.

    python -m mock_api.change 100042 --region "North East"     # update a client's fields
    python -m mock_api.change 100042 --status inactive          # a status change
    python -m mock_api.change --create --name "Acme Ltd" --region West --segment Retail

Each change moves the client's ``updated_at`` and joins the change feed (``GET /changes``), which the
``crm_change_feed_sensor`` follows. The write token comes from ``MOCK_CRM_WRITE_TOKEN`` only (a flag
would leak it into ``ps`` output and shell history); the mock CRM must have been started with the
same value. The address: ``--url``, else ``CRM_API_URL``, else http://127.0.0.1:8765.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

# argparse destination -> API field
FIELDS = {
    "name": "client_name",
    "region": "region",
    "segment": "segment",
    "parent": "parent_org",
    "advisor": "advisor_email",
    "status": "status",
    "aum": "aum_usd",
    "business_type": "business_type",
}
RETRIES = 3  # the mock's MOCK_CRM_ERROR_RATE applies to writes too; an injected 503 changed nothing, so retrying is safe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mock_api.change",
        description="Change a client in the running mock CRM (needs MOCK_CRM_WRITE_TOKEN in the environment).",
    )
    parser.add_argument("client_id", nargs="?", help="the client to change (ids start at 100001); with --create: the new id")
    parser.add_argument("--create", action="store_true", help="create a client instead of changing one")
    parser.add_argument("--name", help="client_name")
    parser.add_argument("--region", help='region, as typed in the CRM (e.g. "West", "NE")')
    parser.add_argument("--segment", help="segment (e.g. Retail, Institutional)")
    parser.add_argument("--parent", help="parent_org")
    parser.add_argument("--advisor", help="advisor_email")
    parser.add_argument("--status", choices=["active", "inactive"], help="status")
    parser.add_argument("--aum", type=float, help="aum_usd")
    parser.add_argument("--business-type", help="business_type")
    parser.add_argument("--url", help="the mock CRM (default: CRM_API_URL, else http://127.0.0.1:8765)")
    return parser


def body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON body: only the fields given on the command line."""
    return {field: getattr(args, dest) for dest, field in FIELDS.items() if getattr(args, dest) is not None}


def send(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    response = client.request(method, path, json=body)
    for attempt in range(1, RETRIES + 1):
        if response.status_code != 503:
            break
        time.sleep(0.5 * attempt)
        response = client.request(method, path, json=body)
    return response


def describe(result: dict[str, Any]) -> str:
    change, record = result.get("change"), result["record"]
    if change is None:
        return f"client {record['client_id']}: nothing changed (the values given are the current ones); no change recorded"
    fields = ", ".join(f"{name}: {values['from']!r} -> {values['to']!r}" for name, values in change["fields"].items())
    return (
        f"{change['kind']} of client {change['client_id']} at {change['changed_at']} (feed cursor {change['cursor']}): {fields}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    body = body_from_args(args)
    if not args.create and not args.client_id:
        parser.error("give the client_id to change, or --create")
    if not body:
        parser.error("give at least one field to set (--region, --segment, --status, ...)")
    token = os.environ.get("MOCK_CRM_WRITE_TOKEN", "").strip()
    if not token:
        print(
            "mock_api.change: MOCK_CRM_WRITE_TOKEN is not set: export the write token the mock CRM was started with",
            file=sys.stderr,
        )
        return 2
    base_url = (args.url or os.environ.get("CRM_API_URL") or "http://127.0.0.1:8765").rstrip("/")
    if args.create:
        method, path = "POST", "/clients"
        if args.client_id:
            body["client_id"] = args.client_id
    else:
        method, path = "PATCH", f"/clients/{args.client_id}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as client:
            response = send(client, method, path, body)
    except httpx.TransportError as exc:
        print(
            f"mock_api.change: cannot reach the mock CRM at {base_url} ({type(exc).__name__}); is `make dev` running?",
            file=sys.stderr,
        )
        return 1
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"mock_api.change: {method} {path} answered HTTP {response.status_code}: {detail}", file=sys.stderr)
        return 1
    print(describe(response.json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
