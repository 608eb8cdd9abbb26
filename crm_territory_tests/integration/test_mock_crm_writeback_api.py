"""The mock CRM written to as a real CRM would be (issue 13): etags, If-Match, bulk assignment, write scope,
Idempotency-Key, the write rate limit, a connection dropped after the write was applied, a CRM user's own edit.

Every test talks to a real ``python -m mock_api`` over HTTP (``run_writable_mock_api``). The per-request
answers are checked against what a read-back (``GET /clients/{id}``) and the change feed say was written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from crm_territory.logic.ingest.api_snapshot import records_to_frame
from crm_territory.resources.crm_api import CrmApiResource
from crm_territory.schemas import CrmApiClients, columns_of
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, auth_headers
from crm_territory_tests.support.mock_crm_writes import (
    WRITE_TOKEN,
    bulk_assign,
    get_client,
    run_writable_mock_api,
)
from mock_api.app import MAX_BULK_RECORDS, RECORD_COLUMNS, MockApiConfigError, MockApiSettings, is_valid_email
from mock_api.generator import CLIENT_COLUMNS, generate_clients

pytestmark = pytest.mark.integration

N_CLIENTS = 300
SEED = 5
# not advisors of the generated book, so setting one always changes the owner
OWNER = "pat.new@northwind-advisors.com"
OTHER_OWNER = "sam.other@northwind-advisors.com"


@pytest.fixture
def crm() -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """A fresh writable CRM (each test starts from the generated book): its URL, a reader and a writer."""
    with run_writable_mock_api(clients=N_CLIENTS, seed=SEED) as url:
        with (
            httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as reader,
            httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer,
        ):
            yield url, reader, writer


def feed(reader: httpx.Client) -> list[dict]:
    """Every change the log holds, oldest first."""
    changes, params = [], {"limit": 1000}
    while True:
        body = reader.get("/changes", params=params).json()
        changes.extend(body["data"])
        if not body["has_more"]:
            return changes
        params["after"] = body["next_cursor"]


def walk(reader: httpx.Client) -> list[dict]:
    """The whole book, page by page (a page answered 503 by an injected fault is asked again)."""
    records, page = [], 1
    while page is not None:
        response = reader.get("/clients", params={"page": page, "page_size": 1000})
        if response.status_code == 503:
            continue
        body = response.json()
        records.extend(body["data"])
        page = body["next_page"]
    return records


def _script_env() -> dict[str, str]:
    """The environment of ``python -m mock_api.change`` (a CRM user's edit), without this run's CRM settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_CRM_", "CRM_API_"))}


# --- the record's assignment and version stamp ------------------------------------------------------------


def test_records_carry_owner_territory_assignment_version_and_an_etag(crm) -> None:
    url, reader, _ = crm
    records = walk(reader)
    generated = {r["client_id"]: r for r in generate_clients(N_CLIENTS, SEED).to_dict("records")}
    assert len(records) == N_CLIENTS
    for record in records:
        assert list(record) == list(RECORD_COLUMNS)
        assert {k: record[k] for k in CLIENT_COLUMNS} == generated[record["client_id"]]
        advisor = record["advisor_email"]
        # the CRM's owner starts as the advisor e-mail when that is a usable address, as typed
        assert record["owner_email"] == (advisor if is_valid_email(advisor) else None)
        assert record["territory_id"] is None and record["assignment_version"] == 0
    assert sum(r["owner_email"] is None for r in records) > sum(r["advisor_email"] is None for r in records)  # invalid ones
    assert len({r["etag"] for r in records}) == N_CLIENTS

    one = reader.get("/clients/100007")
    assert one.status_code == 200
    assert one.json() == next(r for r in records if r["client_id"] == "100007")
    assert one.headers["etag"] == f'"{one.json()["etag"]}"'
    assert reader.get("/clients/999999").status_code == 404
    assert httpx.get(f"{url}/clients/100007", headers=auth_headers(WRITE_TOKEN), timeout=10).status_code == 401


def test_the_engine_pull_ignores_the_new_fields(crm) -> None:
    """The CRM API source keeps its own columns: the assignment fields do not reach crm_api_clients."""
    url, _, writer = crm
    assert bulk_assign(writer, [{"client_id": "100001", "owner_email": OWNER, "territory_id": "T-1"}]).status_code == 200
    api = CrmApiResource(base_url=url, token=TEST_TOKEN, page_size=100, backoff_seconds=0.01)
    frame = records_to_frame(api.fetch_clients(), pd.Timestamp.now(tz="UTC"))
    assert list(frame.columns) == columns_of(CrmApiClients)
    assert len(frame) == N_CLIENTS and not {"owner_email", "territory_id", "etag"} & set(frame.columns)


# --- PATCH with If-Match -----------------------------------------------------------------------------------


def test_patch_with_a_current_if_match_writes_and_a_stale_one_is_412_and_writes_nothing(crm) -> None:
    url, reader, writer = crm
    before = get_client(url, "100010")

    done = writer.patch(
        "/clients/100010", json={"owner_email": OWNER, "territory_id": "T-WEST"}, headers={"If-Match": f'"{before["etag"]}"'}
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["etag"] != before["etag"] and done.headers["etag"] == f'"{body["etag"]}"'
    assert body["record"] == get_client(url, "100010")
    after = body["record"]
    assert (after["owner_email"], after["territory_id"], after["assignment_version"]) == (OWNER, "T-WEST", 1)
    assert after["updated_at"] > before["updated_at"] and after["etag"] == body["etag"]
    assert {k: after[k] for k in ("client_name", "region", "advisor_email")} == {
        k: before[k] for k in ("client_name", "region", "advisor_email")
    }

    stale = writer.patch("/clients/100010", json={"owner_email": OTHER_OWNER}, headers={"If-Match": before["etag"]})
    assert stale.status_code == 412
    assert stale.json()["etag"] == after["etag"] and stale.json()["error"] == "precondition_failed"
    assert stale.headers["etag"] == f'"{after["etag"]}"'
    assert get_client(url, "100010") == after  # nothing written
    assert len(feed(reader)) == 1

    # bare etag and * match; no If-Match is an unconditional write, as before
    assert writer.patch("/clients/100010", json={"territory_id": "T-2"}, headers={"If-Match": after["etag"]}).status_code == 200
    assert writer.patch("/clients/100010", json={"territory_id": "T-3"}, headers={"If-Match": "*"}).status_code == 200
    assert writer.patch("/clients/100010", json={"region": "West"}).status_code == 200
    now = get_client(url, "100010")
    assert (now["territory_id"], now["region"], now["assignment_version"]) == ("T-3", "West", 3)  # region: not an assignment
    # the current values again: nothing written, the etag stays
    same = writer.patch("/clients/100010", json={"territory_id": "T-3"}, headers={"If-Match": now["etag"]})
    assert same.status_code == 200 and same.json()["change"] is None and same.json()["etag"] == now["etag"]
    # an invalid owner is refused whole
    assert writer.patch("/clients/100010", json={"owner_email": "jane(at)northwind"}).status_code == 422
    assert get_client(url, "100010") == now


# --- bulk assignment ------------------------------------------------------------------------------------


def test_bulk_assign_answers_per_record_and_writes_only_the_ok_ones(crm) -> None:
    url, reader, writer = crm
    etags = {cid: get_client(url, cid)["etag"] for cid in ("100001", "100002", "100003", "100004")}
    untouched = {cid: get_client(url, cid) for cid in ("100003", "100004", "100005", "100006")}
    records = [
        {"client_id": "100001", "owner_email": OWNER, "territory_id": "T-1", "if_match": etags["100001"]},
        {"client_id": "100002", "territory_id": "T-2"},  # unconditional, territory only
        {"client_id": "100003", "owner_email": OWNER, "if_match": etags["100002"]},  # another client's etag: stale
        {"client_id": "100004", "owner_email": "not an email", "territory_id": "T-4"},
        {"client_id": "100005", "owner_email": OWNER, "colour": "red"},
        {"client_id": "100006"},  # nothing to write
        "100007",
        {"client_id": "999999", "owner_email": OWNER},
        {"client_id": "100001", "owner_email": OWNER, "territory_id": "T-1"},  # the values it has now: ok, unchanged
    ]
    response = bulk_assign(writer, records)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [(r["client_id"], r["status"]) for r in results] == [
        ("100001", "ok"),
        ("100002", "ok"),
        ("100003", "conflict"),
        ("100004", "invalid"),
        ("100005", "invalid"),
        ("100006", "invalid"),
        (None, "invalid"),
        ("999999", "not_found"),
        ("100001", "ok"),
    ]
    assert body["counts"] == {"ok": 3, "conflict": 1, "invalid": 4, "not_found": 1}
    assert "owner_email" in results[3]["error"] and "colour" in results[4]["error"] and "nothing to write" in results[5]["error"]
    assert results[2]["etag_before"] == etags["100003"] and results[2]["etag_after"] is None and "stale" in results[2]["error"]

    first, second = get_client(url, "100001"), get_client(url, "100002")
    assert (first["owner_email"], first["territory_id"], first["assignment_version"]) == (OWNER, "T-1", 1)
    assert (second["territory_id"], second["assignment_version"]) == ("T-2", 1)
    assert results[0]["etag_before"] == etags["100001"] and results[0]["etag_after"] == first["etag"] != etags["100001"]
    assert results[8]["changed"] is False and results[8]["etag_before"] == results[8]["etag_after"] == first["etag"]
    assert all(r["error"] is None for r in results if r["status"] == "ok")
    assert {cid: get_client(url, cid) for cid in untouched} == untouched

    # the feed shows the two writes, with the fields they set and the etag they made
    changes = feed(reader)
    assert [(c["kind"], c["client_id"]) for c in changes] == [("update", "100001"), ("update", "100002")]
    assert changes[0]["fields"]["owner_email"]["to"] == OWNER and changes[0]["fields"]["territory_id"] == {
        "from": None,
        "to": "T-1",
    }
    assert changes[0]["fields"]["assignment_version"] == {"from": 0, "to": 1}
    assert [c["etag"] for c in changes] == [first["etag"], second["etag"]]
    assert changes[0]["changed_at"] == first["updated_at"]


def test_bulk_assign_takes_at_most_200_records(crm) -> None:
    _, reader, writer = crm
    too_many = [{"client_id": str(100001 + i), "territory_id": "T-9"} for i in range(MAX_BULK_RECORDS + 1)]
    refused = bulk_assign(writer, too_many)
    assert refused.status_code == 413 and f"at most {MAX_BULK_RECORDS}" in refused.json()["detail"]
    assert feed(reader) == []
    accepted = bulk_assign(writer, too_many[:MAX_BULK_RECORDS])
    assert accepted.status_code == 200 and accepted.json()["counts"]["ok"] == MAX_BULK_RECORDS
    assert len(feed(reader)) == MAX_BULK_RECORDS
    assert writer.post("/clients/bulk-assign", json=[{"client_id": "100001"}]).status_code == 422  # not {"records": [...]}


def test_writes_need_the_write_token(crm) -> None:
    url, reader, _ = crm
    record = [{"client_id": "100001", "owner_email": OWNER}]
    with httpx.Client(base_url=url, headers=auth_headers(TEST_TOKEN), timeout=10.0) as read_only:
        refused = bulk_assign(read_only, record)
        assert refused.status_code == 403 and "MOCK_CRM_WRITE_TOKEN" in refused.json()["detail"]
        assert read_only.patch("/clients/100001", json={"owner_email": OWNER}).status_code == 403
    with httpx.Client(base_url=url, headers=auth_headers("wrong-token"), timeout=10.0) as stranger:
        assert bulk_assign(stranger, record).status_code == 401
    assert httpx.post(f"{url}/clients/bulk-assign", json={"records": record}, timeout=10).status_code == 401
    assert feed(reader) == [] and get_client(url, "100001")["assignment_version"] == 0


# --- Idempotency-Key ------------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_answer_and_applies_once(crm) -> None:
    url, reader, writer = crm
    headers = {"Idempotency-Key": "patch-1"}
    first = writer.patch("/clients/100020", json={"owner_email": OWNER}, headers=headers)
    again = writer.patch("/clients/100020", json={"owner_email": OWNER}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert get_client(url, "100020")["assignment_version"] == 1

    # a replay answers what the first request got, even after the record moved on
    writer.patch("/clients/100020", json={"owner_email": OTHER_OWNER}).raise_for_status()
    assert writer.patch("/clients/100020", json={"owner_email": OWNER}, headers=headers).content == first.content
    assert get_client(url, "100020")["owner_email"] == OTHER_OWNER

    # the same key for another request: refused, nothing applied
    reused = writer.patch("/clients/100020", json={"owner_email": "x.y@northwind-advisors.com"}, headers=headers)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert writer.patch("/clients/100021", json={"owner_email": OWNER}, headers=headers).status_code == 422
    assert bulk_assign(writer, [{"client_id": "100020", "owner_email": OWNER}], Idempotency_Key="patch-1").status_code == 422
    assert get_client(url, "100020")["owner_email"] == OTHER_OWNER and get_client(url, "100021")["assignment_version"] == 0

    # bulk: the same batch twice under one key is applied once
    batch = [{"client_id": str(100030 + i), "territory_id": "T-7"} for i in range(5)]
    one = bulk_assign(writer, batch, Idempotency_Key="bulk-1")
    two = bulk_assign(writer, batch, Idempotency_Key="bulk-1")
    assert one.content == two.content and two.headers["idempotent-replayed"] == "true"
    assert [get_client(url, r["client_id"])["assignment_version"] for r in batch] == [1] * 5
    assert [c["client_id"] for c in feed(reader)] == ["100020", "100020", *(r["client_id"] for r in batch)]


def test_idempotency_keys_are_bounded_least_recently_used_first() -> None:
    with run_writable_mock_api(clients=20, idempotency_keys=2) as url:
        with httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer:

            def patch(key: str, territory: str) -> httpx.Response:
                return writer.patch("/clients/100001", json={"territory_id": territory}, headers={"Idempotency-Key": key})

            patch("a", "T-A").raise_for_status()
            patch("b", "T-B").raise_for_status()
            assert patch("a", "T-A").headers.get("idempotent-replayed") == "true"  # "a" is now the most recent
            patch("c", "T-C").raise_for_status()  # two keys kept: "b" goes
            assert patch("a", "T-A").headers.get("idempotent-replayed") == "true"
            forgotten = patch("b", "T-B")
            assert forgotten.status_code == 200 and "idempotent-replayed" not in forgotten.headers  # applied again
            assert get_client(url, "100001")["territory_id"] == "T-B"


# --- rate limit and injected faults on writes --------------------------------------------------------------


def test_writes_over_the_rate_limit_answer_429_with_retry_after() -> None:
    with run_writable_mock_api(clients=20, write_rate_limit=2) as url:
        with (
            httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer,
            httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as reader,
        ):
            statuses = [writer.patch(f"/clients/{100001 + i}", json={"territory_id": "T"}).status_code for i in range(2)]
            assert statuses == [200, 200]  # a burst of one second's worth
            limited = bulk_assign(writer, [{"client_id": "100003", "territory_id": "T"}])
            assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
            assert "MOCK_CRM_WRITE_RATE_LIMIT" in limited.json()["detail"]
            assert get_client(url, "100003")["territory_id"] is None  # nothing written
            assert reader.get("/clients", params={"page_size": 1}).status_code == 200  # reads are not limited
            time.sleep(0.5)  # one write every 1/2 s
            assert bulk_assign(writer, [{"client_id": "100003", "territory_id": "T"}]).status_code == 200


def test_a_connection_dropped_after_the_write_is_safe_to_retry_with_the_same_key() -> None:
    with run_writable_mock_api(clients=20, drop_after_write_rate=1.0) as url:
        with httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer:
            before = get_client(url, "100001")
            headers = {"If-Match": before["etag"], "Idempotency-Key": "drop-1"}
            with pytest.raises(httpx.TransportError):
                writer.patch("/clients/100001", json={"owner_email": OWNER}, headers=headers)
            applied = get_client(url, "100001")
            assert (applied["owner_email"], applied["assignment_version"]) == (OWNER, 1)  # the server did apply it

            retried = writer.patch("/clients/100001", json={"owner_email": OWNER}, headers=headers)
            assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true"
            assert retried.json()["record"] == applied == get_client(url, "100001")

            # without a key the same retry cannot tell: its If-Match is stale now, although its write went through
            read_etag = get_client(url, "100002")["etag"]
            with pytest.raises(httpx.TransportError):
                writer.patch("/clients/100002", json={"owner_email": OWNER}, headers={"If-Match": read_etag})
            ambiguous = writer.patch("/clients/100002", json={"owner_email": OWNER}, headers={"If-Match": read_etag})
            assert ambiguous.status_code == 412 and get_client(url, "100002")["owner_email"] == OWNER

            # bulk too
            batch = [{"client_id": "100003", "territory_id": "T-3"}, {"client_id": "100004", "territory_id": "T-4"}]
            with pytest.raises(httpx.TransportError):
                bulk_assign(writer, batch, Idempotency_Key="drop-2")
            replay = bulk_assign(writer, batch, Idempotency_Key="drop-2")
            assert replay.headers["idempotent-replayed"] == "true" and replay.json()["counts"]["ok"] == 2
            assert [get_client(url, c)["assignment_version"] for c in ("100003", "100004")] == [1, 1]

            # the change script retries a lost answer with its Idempotency-Key: the edit is made once
            script = subprocess.run(
                [sys.executable, "-m", "mock_api.change", "--url", url, "100005", "--territory", "T-5"],
                env={**_script_env(), "MOCK_CRM_WRITE_TOKEN": WRITE_TOKEN},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert script.returncode == 0 and "connection was lost" in script.stderr, script.stderr
            assert get_client(url, "100005")["assignment_version"] == 1
            changes = httpx.get(f"{url}/changes", headers=auth_headers(), timeout=10).json()["data"]
            assert [c["client_id"] for c in changes] == ["100001", "100002", "100003", "100004", "100005"]


def test_dropped_connections_are_seeded() -> None:
    def pattern(url: str) -> list[bool]:
        with httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer:
            dropped = []
            for i in range(16):
                try:
                    writer.patch(f"/clients/{100001 + i}", json={"territory_id": "T"}).raise_for_status()
                    dropped.append(False)
                except httpx.TransportError:
                    dropped.append(True)
            assert [get_client(url, str(100001 + i))["territory_id"] for i in range(16)] == ["T"] * 16  # all applied
            return dropped

    with (
        run_writable_mock_api(clients=20, drop_after_write_rate=0.5, fault_seed=4) as a,
        run_writable_mock_api(clients=20, drop_after_write_rate=0.5, fault_seed=4) as b,
    ):
        first, second = pattern(a), pattern(b)
    assert first == second and set(first) == {True, False}


def test_bulk_writes_through_injected_faults_apply_every_record_exactly_once() -> None:
    """Batches retried with their Idempotency-Key through 503s and dropped connections: each record written once."""
    clients, batch_size = 4000, MAX_BULK_RECORDS
    with run_writable_mock_api(clients=clients, error_rate=0.15, drop_after_write_rate=0.15, fault_seed=2) as url:
        with (
            httpx.Client(base_url=url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer,
            httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as reader,
        ):
            ids = [str(100001 + i) for i in range(clients)]
            failures = {"503": 0, "dropped": 0}
            for n in range(0, clients, batch_size):
                batch = [{"client_id": cid, "owner_email": OWNER, "territory_id": f"T-{n}"} for cid in ids[n : n + batch_size]]
                for _ in range(10):
                    try:
                        response = bulk_assign(writer, batch, Idempotency_Key=f"batch-{n}")
                    except httpx.TransportError:
                        failures["dropped"] += 1
                        continue
                    if response.status_code == 503:
                        failures["503"] += 1
                        continue
                    assert response.status_code == 200 and response.json()["counts"]["ok"] == len(batch)
                    break
                else:
                    pytest.fail(f"batch {n} never got through")
            assert failures["503"] > 0 and failures["dropped"] > 0  # the faults were met
            records = walk(reader)
            assert len(records) == clients == len({r["client_id"] for r in records})
            assert {r["assignment_version"] for r in records} == {1}
            assert {(r["owner_email"], r["territory_id"]) for r in records[:batch_size]} == {(OWNER, "T-0")}


# --- a CRM user's own edit -------------------------------------------------------------------------------


def test_a_crm_users_edit_through_the_change_script_moves_the_etag(crm) -> None:
    url, reader, writer = crm
    before = get_client(url, "100040")

    def change(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mock_api.change", "--url", url, "100040", *args],
            env={**_script_env(), "MOCK_CRM_WRITE_TOKEN": WRITE_TOKEN},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = change("--owner", OTHER_OWNER, "--territory", "T-USER")
    assert done.returncode == 0, done.stderr
    after = get_client(url, "100040")
    assert (after["owner_email"], after["territory_id"], after["assignment_version"]) == (OTHER_OWNER, "T-USER", 1)
    assert after["etag"] != before["etag"] and after["updated_at"] > before["updated_at"]
    assert f"etag now {after['etag']}" in done.stdout and "owner_email" in done.stdout

    # the engine's write-back, still holding the etag it read before the user's edit, meets a conflict
    stale = bulk_assign(writer, [{"client_id": "100040", "owner_email": OWNER, "if_match": before["etag"]}]).json()
    assert stale["results"][0]["status"] == "conflict" and stale["results"][0]["etag_before"] == after["etag"]
    # and the script's own --if-match is a precondition too
    refused = change("--territory", "T-OTHER", "--if-match", before["etag"])
    assert refused.returncode == 1 and "HTTP 412" in refused.stderr
    assert change("--region", "West", "--if-match", after["etag"]).returncode == 0
    changes = feed(reader)
    assert [(c["client_id"], sorted(c["fields"])) for c in changes] == [
        ("100040", ["assignment_version", "owner_email", "territory_id"]),
        ("100040", ["region"]),
    ]
    assert changes[0]["etag"] == after["etag"] and get_client(url, "100040")["etag"] == changes[1]["etag"]


# --- settings ----------------------------------------------------------------------------------------------


def test_write_back_settings_are_read_and_checked() -> None:
    base = {"CRM_API_TOKEN": "t"}
    settings = MockApiSettings.from_env(
        {**base, "MOCK_CRM_WRITE_RATE_LIMIT": "50", "MOCK_CRM_DROP_AFTER_WRITE_RATE": "0.02", "MOCK_CRM_IDEMPOTENCY_KEYS": "10"}
    )
    assert (settings.write_rate_limit, settings.drop_after_write_rate, settings.idempotency_keys) == (50, 0.02, 10)
    defaults = MockApiSettings.from_env(base)
    assert (defaults.write_rate_limit, defaults.drop_after_write_rate, defaults.idempotency_keys) == (0, 0, 100_000)
    for name, value in [
        ("MOCK_CRM_WRITE_RATE_LIMIT", "-1"),
        ("MOCK_CRM_DROP_AFTER_WRITE_RATE", "1.5"),
        ("MOCK_CRM_IDEMPOTENCY_KEYS", "0"),
        ("MOCK_CRM_IDEMPOTENCY_KEYS", "many"),
    ]:
        with pytest.raises(MockApiConfigError, match=name):
            MockApiSettings.from_env({**base, name: value})
