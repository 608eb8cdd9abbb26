"""Edit the running mock CRM, as a person would in the real one: ``python -m mock_api.change ...``.

    python -m mock_api.change 100042 --region "North East"     # update a client's fields
    python -m mock_api.change 100042 --status inactive          # a status change
    python -m mock_api.change --create --name "Acme Ltd" --region West --segment Retail
    python -m mock_api.change 100042 --owner jane.doe@northwind-advisors.com --territory T-WEST-01   # reassign it

Each change moves the client's ``updated_at`` and ``etag`` (an owner or territory change also its
``assignment_version``) and joins the change feed (``GET /changes``), which the
``crm_change_feed_sensor`` follows: what a CRM user's own edit does, beside the engine's write-back.
``--if-match ETAG`` writes only if the client is still at that version (else HTTP 412). Every request
carries an ``Idempotency-Key``, so a retry after an injected failure or a dropped connection cannot
apply the edit twice. The write token comes from ``MOCK_CRM_WRITE_TOKEN`` only (a flag
would leak it into ``ps`` output and shell history); the mock CRM must have been started with the
same value. The address: ``--url``, else ``CRM_API_URL``, else http://127.0.0.1:8765.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
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
    "owner": "owner_email",
    "territory": "territory_id",
}
# The mock's MOCK_CRM_ERROR_RATE applies to writes too (an injected 503 changed nothing), and so does its write rate
# limit (429) and MOCK_CRM_DROP_AFTER_WRITE_RATE (the edit applied, the answer lost): the Idempotency-Key makes a retry safe.
RETRIES = 3
RETRY_STATUSES = (429, 503)
MAX_RETRY_AFTER_SECONDS = 5.0


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
    parser.add_argument("--owner", help="owner_email: the advisor who owns the client in the CRM (a valid e-mail)")
    parser.add_argument("--territory", help="territory_id")
    parser.add_argument("--if-match", metavar="ETAG", help="write only if the client's etag is still ETAG (else HTTP 412)")
    parser.add_argument("--url", help="the mock CRM (default: CRM_API_URL, else http://127.0.0.1:8765)")
    return parser


def body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON body: only the fields given on the command line."""
    return {field: getattr(args, dest) for dest, field in FIELDS.items() if getattr(args, dest) is not None}


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    retry_after = response.headers.get("Retry-After", "") if response is not None else ""
    if retry_after.strip().isdigit():
        return min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
    return 0.5 * attempt


def send(
    client: httpx.Client, method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """The request, retried on 429/503 and on a connection lost after sending it, always with the same Idempotency-Key."""
    headers = {"Idempotency-Key": f"mock-api-change-{uuid.uuid4()}", **(headers or {})}
    for attempt in range(1, RETRIES + 2):
        try:
            response = client.request(method, path, json=body, headers=headers)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # the request may have been applied: only the same Idempotency-Key makes asking again safe
            if attempt > RETRIES:
                raise
            print(f"mock_api.change: the connection was lost ({type(exc).__name__}); asking again", file=sys.stderr)
            time.sleep(_retry_wait(None, attempt))
            continue
        if response.status_code not in RETRY_STATUSES or attempt > RETRIES:
            return response
        time.sleep(_retry_wait(response, attempt))
    raise AssertionError("unreachable")


def describe(result: dict[str, Any]) -> str:
    change, record = result.get("change"), result["record"]
    if change is None:
        return f"client {record['client_id']}: nothing changed (the values given are the current ones); no change recorded"
    fields = ", ".join(f"{name}: {values['from']!r} -> {values['to']!r}" for name, values in change["fields"].items())
    return (
        f"{change['kind']} of client {change['client_id']} at {change['changed_at']} (feed cursor {change['cursor']}): {fields}"
        f"; etag now {result.get('etag', record.get('etag'))}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    body = body_from_args(args)
    if not args.create and not args.client_id:
        parser.error("give the client_id to change, or --create")
    if args.create and args.if_match:
        parser.error("--if-match is for changing a client, not --create")
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
            response = send(client, method, path, body, {"If-Match": args.if_match} if args.if_match else None)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        print(
            f"mock_api.change: cannot reach the mock CRM at {base_url} ({type(exc).__name__}); is `make dev` running?",
            file=sys.stderr,
        )
        return 1
    except httpx.TransportError as exc:
        print(
            f"mock_api.change: the connection to {base_url} kept failing ({type(exc).__name__}): the edit may have been "
            f"applied; read the client back (GET /clients/{args.client_id or '<id>'})",
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
