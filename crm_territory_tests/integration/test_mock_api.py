"""Tests of the mock CRM API: the generator in-process, the API over real HTTP.

Servers are real ``python -m mock_api`` processes (see ``mock_api_server``);
one shared server covers the read-only behaviour, the fault-injection cases
get their own short-lived servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from crm_territory_tests.support.mock_api_server import TEST_TOKEN, auth_headers, run_mock_api
from mock_api.app import MAX_PAGE_SIZE, RECORD_COLUMNS, MockApiConfigError, MockApiSettings, create_app
from mock_api.generator import (
    CLIENT_COLUMNS,
    DROP_COLUMNS,
    REGION_SPELLINGS,
    SEGMENT_SPELLINGS,
    UNKNOWN_REGIONS,
    UNKNOWN_SEGMENTS,
    generate_clients,
    write_drop_csv,
)

# An odd size so the last page is partial.
N_CLIENTS = 1234
SEED = 7


def _book_records(n: int = N_CLIENTS, seed: int = SEED) -> dict[str, dict]:
    return {r["client_id"]: r for r in generate_clients(n, seed).to_dict("records")}


def _generated_part(record: dict) -> dict:
    """A served record without the CRM's assignment fields (owner, territory, versions: the write-back's tests)."""
    return {name: record[name] for name in CLIENT_COLUMNS}


@pytest.fixture(scope="module")
def api() -> httpx.Client:
    with run_mock_api(clients=N_CLIENTS, seed=SEED) as base_url:
        with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as client:
            yield client


def _walk(client: httpx.Client, **params) -> list[dict]:
    """Follow next_page from page 1; return every record served."""
    records, page, seen_pages = [], 1, 0
    while page is not None:
        resp = client.get("/clients", params={**params, "page": page})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["page"] == page
        records.extend(body["data"])
        page = body["next_page"]
        seen_pages += 1
        assert seen_pages <= body["total_pages"] + 1, "next_page never ends"
    return records


# --- generator ------------------------------------------------------------------


def test_generator_is_deterministic_and_ids_are_unique() -> None:
    a = generate_clients(3000, seed=1)
    pd.testing.assert_frame_equal(a, generate_clients(3000, seed=1))
    assert not a.equals(generate_clients(3000, seed=2))
    assert list(a.columns) == list(CLIENT_COLUMNS)
    assert len(a) == 3000 and a["client_id"].is_unique
    assert a["client_id"].iloc[0] == "100001" and a["client_id"].iloc[-1] == "103000"
    assert a["client_id"].str.fullmatch(r"\d+").all()
    assert len(generate_clients(0)) == 0


def test_generator_is_messy_at_roughly_the_stated_rates() -> None:
    n = 20_000
    book = generate_clients(n, seed=42)

    spelling_to_region = {s: canon for canon, spellings in REGION_SPELLINGS.items() for s in spellings}
    assert set(book["region"]) <= set(spelling_to_region) | set(UNKNOWN_REGIONS)
    for canon, spellings in REGION_SPELLINGS.items():
        assert canon in spellings
        used = set(book["region"]) & set(spellings)
        assert len(used) >= 3, f"{canon}: only {used}"
    assert {"north east", "NE", "NORTHEAST", " Northeast ", "N.E."} <= set(book["region"])
    assert 0.002 < book["region"].isin(UNKNOWN_REGIONS).mean() < 0.01

    spelling_to_segment = {s: canon for canon, spellings in SEGMENT_SPELLINGS.items() for s in spellings}
    assert set(book["segment"]) <= set(spelling_to_segment) | set(UNKNOWN_SEGMENTS)
    assert {"INST", "Inst.", "RET", "private-wealth", "PW", "HNW"} <= set(book["segment"])
    assert 0.002 < (book["segment"] == "Other").mean() < 0.01

    no_name = book["client_name"].isna() | (book["client_name"] == "")
    assert 0.002 < no_name.mean() < 0.01
    assert book["client_name"].isna().any() and (book["client_name"] == "").any()
    named = book.loc[~no_name, "client_name"]
    # "[The ]Brand[ & Brand] Kind Form[ suffix]": letters (accents too), "&", ",", "." and "'"; at least three words.
    assert named.str.fullmatch(r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ&,.' ]*[A-Za-zÀ-ÖØ-öø-ÿ.]").all()
    assert (named.str.split().str.len() >= 3).all()
    # Capitalised, except the planted duplicates typed in lower case.
    lower = named == named.str.lower()
    assert named[~lower].str.match(r"(?:The )?[A-ZÀ-ÖØ-Þ]").all() and 0 < lower.mean() < 0.02
    assert named.str.contains("[À-ÖØ-öø-ÿ]").any() and named.str.contains(" & ").any() and named.str.startswith("The ").any()

    assert 0.20 < book["parent_org"].isna().mean() < 0.30
    assert set(book["status"]) == {"active", "inactive"}
    assert 0.85 < (book["status"] == "active").mean() < 0.95

    emails = book["advisor_email"]
    assert 0.005 < emails.isna().mean() < 0.02
    present = emails.dropna()
    valid = present.str.fullmatch(r"[A-Za-z]+\.[A-Za-z]+@[Nn]orthwind-[Aa]dvisors\.com|[A-Z.]+@NORTHWIND-ADVISORS\.COM")
    assert 0.01 < (~valid).mean() < 0.04
    assert {"not an email"} <= set(present) and present.str.contains(r"\(at\)").any() and present.str.endswith("@").any()
    miscased = valid & (present != present.str.lower())
    assert 0.25 < miscased.mean() < 0.35
    assert 50 <= present[valid].str.lower().nunique() <= 60

    stamps = pd.to_datetime(book["updated_at"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
    end = pd.Timestamp("2026-11-01T00:00:00Z")
    assert (stamps < end).all() and (stamps >= end - pd.Timedelta(days=365)).all()
    assert stamps.dt.month.nunique() == 12


def test_write_drop_csv_uses_the_drop_layout(tmp_path) -> None:
    path = tmp_path / "drops" / "clients.csv"
    assert write_drop_csv(path, 500, seed=3) == 500
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(DROP_COLUMNS)
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == list(DROP_COLUMNS) and len(back) == 500
    expected = generate_clients(500, seed=3)[list(DROP_COLUMNS)].fillna("")
    pd.testing.assert_frame_equal(back, expected.astype(str), check_dtype=False)


# --- settings and start-up --------------------------------------------------------


def test_app_requires_a_token(monkeypatch) -> None:
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    with pytest.raises(MockApiConfigError, match="CRM_API_TOKEN"):
        create_app()
    with pytest.raises(MockApiConfigError, match="MOCK_CRM_ERROR_RATE"):
        MockApiSettings.from_env({"CRM_API_TOKEN": "t", "MOCK_CRM_ERROR_RATE": "1.5"})
    settings = MockApiSettings.from_env({"CRM_API_TOKEN": "sekrit-xyz", "MOCK_CRM_FAIL_PAGES": "3, 5", "MOCK_CRM_CLIENTS": "10"})
    assert settings.fail_pages == {3, 5} and settings.clients == 10 and settings.error_rate == 0.0
    assert "sekrit-xyz" not in repr(settings)


def test_cli_exits_2_without_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRM_API_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "mock_api", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "CRM_API_TOKEN" in proc.stderr


def test_cli_flags_override_env(monkeypatch) -> None:
    from mock_api.__main__ import _parser, settings_from_args

    monkeypatch.setenv("CRM_API_TOKEN", "t0k")
    monkeypatch.setenv("MOCK_CRM_CLIENTS", "10")
    monkeypatch.setenv("MOCK_CRM_FAIL_PAGES", "4")
    monkeypatch.setenv("MOCK_CRM_LATENCY_MS", "5")
    args = _parser().parse_args(["--clients", "20", "--fail-pages", "", "--error-rate", "0.25"])
    settings = settings_from_args(args)
    assert (settings.clients, settings.fail_pages, settings.error_rate, settings.latency_ms) == (20, frozenset(), 0.25, 5)
    assert args.host == "127.0.0.1"
    monkeypatch.setenv("MOCK_CRM_WRITE_RATE_LIMIT", "9")
    writes = settings_from_args(_parser().parse_args(["--drop-after-write-rate", "0.1", "--idempotency-keys", "7"]))
    assert (writes.write_rate_limit, writes.drop_after_write_rate, writes.idempotency_keys) == (9, 0.1, 7)
    assert settings_from_args(_parser().parse_args(["--write-rate-limit", "3"])).write_rate_limit == 3


def test_run_mock_api_reports_server_output_on_failed_start() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)did not become healthy.*MOCK_CRM_ERROR_RATE must be between 0 and 1"):
        with run_mock_api(error_rate=2.0):
            pass


# --- auth -------------------------------------------------------------------------


def test_auth_is_required_and_never_echoed(api: httpx.Client) -> None:
    wrong = "wrong-token-123"
    for path in ("/clients", "/health"):
        for headers in ({"Authorization": ""}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Basic {TEST_TOKEN}"}):
            resp = api.get(path, headers=headers)
            assert resp.status_code == 401, (path, headers)
            assert resp.headers["www-authenticate"] == "Bearer"
            assert resp.json() == {"detail": "Missing or invalid bearer token"}
            assert wrong not in resp.text and TEST_TOKEN not in resp.text
    assert api.get("/health").json() == {"status": "ok", "clients": N_CLIENTS}
    assert api.get("/clients").status_code == 200


def test_openapi_documents_clients_and_bearer_scheme(api: httpx.Client) -> None:
    resp = httpx.get(str(api.base_url.join("/openapi.json")))  # public: no Authorization header
    assert resp.status_code == 200
    doc = resp.json()
    schemes = doc["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes.values())
    op = doc["paths"]["/clients"]["get"]
    assert {name for req in op["security"] for name in req} <= set(schemes)
    assert {p["name"] for p in op["parameters"]} == {"page", "page_size", "updated_since"}
    assert doc["paths"]["/health"]["get"]["security"]
    assert httpx.get(str(api.base_url.join("/docs"))).status_code == 200


# --- pagination and filtering ------------------------------------------------------


def test_walking_all_pages_returns_the_book_exactly_once(api: httpx.Client) -> None:
    records = _walk(api, page_size=500)
    ids = [r["client_id"] for r in records]
    assert len(ids) == len(set(ids)) == N_CLIENTS
    # Same records as the generator, nulls included, ordered by (updated_at, client_id).
    assert {r["client_id"]: _generated_part(r) for r in records} == _book_records()
    assert [(r["updated_at"], int(r["client_id"])) for r in records] == sorted(
        (r["updated_at"], int(r["client_id"])) for r in records
    )
    assert any(r["parent_org"] is None for r in records)
    assert all(list(r) == list(RECORD_COLUMNS) for r in records)
    assert {(r["territory_id"], r["assignment_version"]) for r in records} == {(None, 0)}


def test_page_shape_clamping_and_end(api: httpx.Client) -> None:
    first = api.get("/clients", params={"page_size": 500}).json()
    assert (first["page"], first["page_size"], first["total"], first["total_pages"], first["next_page"]) == (
        1, 500, N_CLIENTS, 3, 2,
    )  # fmt: skip
    last = api.get("/clients", params={"page": 3, "page_size": 500}).json()
    assert len(last["data"]) == N_CLIENTS - 1000 and last["next_page"] is None

    clamped = api.get("/clients", params={"page_size": 5000}).json()
    assert clamped["page_size"] == MAX_PAGE_SIZE and len(clamped["data"]) == MAX_PAGE_SIZE
    assert clamped["total_pages"] == 2 and clamped["next_page"] == 2

    past = api.get("/clients", params={"page": 99}).json()
    assert past["data"] == [] and past["next_page"] is None and past["total"] == N_CLIENTS
    assert api.get("/clients").json()["page_size"] == 500  # the default
    assert api.get("/clients", params={"page": 0}).status_code == 422


@pytest.mark.parametrize(
    "since",
    ["2026-06-15T12:00:00Z", "2026-06-15T14:00:00+02:00", "2026-06-15T12:00:00.500000Z", "2026-10-31T23:59:59Z"],
)
def test_updated_since_keeps_exactly_the_newer_records(api: httpx.Client, since: str) -> None:
    instant = datetime.fromisoformat(since).astimezone(UTC)
    book = generate_clients(N_CLIENTS, SEED)
    stamps = pd.to_datetime(book["updated_at"], utc=True)
    expected = set(book.loc[stamps >= instant, "client_id"])
    records = _walk(api, updated_since=since, page_size=300)
    assert {r["client_id"] for r in records} == expected
    assert len(records) == len(expected)
    assert api.get("/clients", params={"updated_since": since}).json()["total"] == len(expected)


def test_updated_since_is_inclusive(api: httpx.Client) -> None:
    newest = max(_book_records().values(), key=lambda r: (r["updated_at"], int(r["client_id"])))
    body = api.get("/clients", params={"updated_since": newest["updated_at"]}).json()
    assert newest in [_generated_part(r) for r in body["data"]]
    assert all(r["updated_at"] >= newest["updated_at"] for r in body["data"])


@pytest.mark.parametrize("garbage", ["yesterday", "2026-13-01T00:00:00Z", "2026-06-01T00:00:00 02:00", ""])
def test_updated_since_garbage_is_422(api: httpx.Client, garbage: str) -> None:
    resp = api.get("/clients", params={"updated_since": garbage})
    assert resp.status_code == 422
    assert "updated_since" in resp.text


# --- fault injection ------------------------------------------------------------------


def test_error_rate_1_fails_every_clients_request_but_not_health() -> None:
    with run_mock_api(clients=50, error_rate=1.0) as base_url:
        with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as client:
            for page in (1, 2, 1):
                resp = client.get("/clients", params={"page": page})
                assert resp.status_code == 503
                assert resp.headers.get("retry-after") == "1"
            assert client.get("/health").json() == {"status": "ok", "clients": 50}
            assert client.get("/clients", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_fail_pages_and_latency() -> None:
    latency_ms = 250
    with run_mock_api(clients=300, fail_pages="2", latency_ms=latency_ms) as base_url:
        with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as client:
            for _ in range(2):  # "always", not once
                assert client.get("/clients", params={"page": 2, "page_size": 100}).status_code == 500
            for page in (1, 3):
                started = time.perf_counter()
                resp = client.get("/clients", params={"page": page, "page_size": 100})
                elapsed = time.perf_counter() - started
                assert resp.status_code == 200 and len(resp.json()["data"]) == 100
                assert elapsed >= latency_ms / 1000  # lower bound only: the machine is noisy


def test_partial_error_rate_is_repeatable_with_the_fault_seed() -> None:
    def statuses(base_url: str) -> list[int]:
        with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as client:
            return [client.get("/clients", params={"page_size": 1}).status_code for _ in range(40)]

    with (
        run_mock_api(clients=10, error_rate=0.5, fault_seed=11) as a,
        run_mock_api(clients=10, error_rate=0.5, fault_seed=11) as b,
    ):
        first, second = statuses(a), statuses(b)
    assert first == second
    assert set(first) == {200, 503}


# --- writes and the change feed -------------------------------------------------------


def _feed(client: httpx.Client, after: str | None = None, limit: int = 100) -> list[dict]:
    """Every change after ``after``, following next_cursor page by page."""
    changes, cursor, pages = [], after, 0
    while True:
        params = {"limit": limit, **({"after": cursor} if cursor is not None else {})}
        resp = client.get("/changes", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        changes.extend(body["data"])
        cursor = body["next_cursor"]
        pages += 1
        assert pages < 100, "next_cursor never ends"
        if not body["has_more"]:
            return changes


def test_writes_are_recorded_in_order_and_paginated_by_cursor() -> None:
    from crm_territory_tests.support.mock_crm_writes import WRITE_TOKEN, run_writable_mock_api

    with run_writable_mock_api(clients=50) as base_url:
        with (
            httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as reader,
            httpx.Client(base_url=base_url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer,
        ):
            empty = reader.get("/changes").json()
            assert empty["data"] == [] and not empty["has_more"] and empty["next_cursor"] == empty["head"]
            before = {r["client_id"]: r for r in _walk(reader)}

            assert writer.patch("/clients/100007", json={"region": "Nowhere Land"}).status_code == 200
            assert writer.patch("/clients/100008", json={"status": "inactive"}).status_code == 200
            created = writer.post("/clients", json={"client_name": "Zephyr Holdings", "region": "West"})
            assert created.status_code == 201
            new_id = created.json()["record"]["client_id"]
            assert new_id == "100051"
            assert writer.patch("/clients/100007", json={"segment": "Retail", "region": "West"}).status_code == 200
            # the same values again: nothing changes, nothing is recorded
            same = writer.patch("/clients/100007", json={"region": "West"})
            assert same.status_code == 200 and same.json()["change"] is None

            changes = _feed(reader, limit=1)  # one change a page: the cursor carries the position
            assert [(c["kind"], c["client_id"]) for c in changes] == [
                ("update", "100007"),
                ("status_change", "100008"),
                ("create", new_id),
                ("update", "100007"),
            ]
            seqs = [int(c["cursor"].rsplit(".", 1)[1]) for c in changes]
            assert seqs == sorted(seqs) and len(set(seqs)) == 4
            assert changes[0]["fields"] == {"region": {"from": before["100007"]["region"], "to": "Nowhere Land"}}
            assert changes[3]["fields"]["region"] == {"from": "Nowhere Land", "to": "West"}
            # from any cursor, exactly the changes after it
            assert _feed(reader, after=changes[1]["cursor"]) == changes[2:]
            assert _feed(reader, after=changes[3]["cursor"]) == []
            assert reader.get("/changes").json()["head"] == changes[3]["cursor"]

            # the edited clients moved to the end of update order: an incremental pull from before the edits gets them
            since = max(r["updated_at"] for r in before.values())
            pulled = {r["client_id"]: r for r in _walk(reader, updated_since=since) if r["updated_at"] > since}
            assert set(pulled) == {"100007", "100008", new_id}
            assert (pulled["100007"]["region"], pulled["100007"]["segment"]) == ("West", "Retail")
            assert pulled["100008"]["status"] == "inactive"
            assert pulled["100007"]["updated_at"] == changes[3]["changed_at"]
            everything = _walk(reader)
            assert len(everything) == 51 == len({r["client_id"] for r in everything})
            assert reader.get("/health").json()["clients"] == 51


def test_an_old_cursor_expires_with_a_410_naming_the_head() -> None:
    from crm_territory_tests.support.mock_crm_writes import WRITE_TOKEN, run_writable_mock_api

    with run_writable_mock_api(clients=20, change_log_size=3) as base_url:
        with (
            httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as reader,
            httpx.Client(base_url=base_url, headers=auth_headers(WRITE_TOKEN), timeout=10.0) as writer,
        ):
            start = reader.get("/changes").json()["head"]
            for n, client_id in enumerate(["100001", "100002", "100003"]):
                writer.patch(f"/clients/{client_id}", json={"client_name": f"Renamed {n}"}).raise_for_status()
            # three changes, three kept: the starting cursor still reads all of them
            assert len(_feed(reader, after=start)) == 3
            writer.patch("/clients/100004", json={"client_name": "Renamed 3"}).raise_for_status()
            kept = _feed(reader)
            assert [c["client_id"] for c in kept] == ["100002", "100003", "100004"]
            # the first change is gone: a cursor before it cannot continue
            gone = reader.get("/changes", params={"after": start})
            assert gone.status_code == 410
            body = gone.json()
            assert body["error"] == "cursor_expired" and "expired" in body["detail"] and "last 3" in body["detail"]
            assert body["head"] == kept[-1]["cursor"]
            # the cursor of the first change (dropped) still continues exactly: nothing after it was lost
            first = kept[0]["cursor"].rsplit(".", 1)[0] + ".1"
            assert _feed(reader, after=first) == kept
            # a cursor of another log (the mock restarted), and one ahead of the log, expire too
            foreign = reader.get("/changes", params={"after": "0badc0de.1"})
            assert foreign.status_code == 410 and "another change log" in foreign.json()["detail"]
            ahead = reader.get("/changes", params={"after": kept[-1]["cursor"].rsplit(".", 1)[0] + ".99"})
            assert ahead.status_code == 410 and "ahead" in ahead.json()["detail"]
            # a malformed one is the client's mistake, not an expiry
            assert reader.get("/changes", params={"after": "yesterday"}).status_code == 422


def test_the_read_token_cannot_write_and_tokens_are_never_echoed() -> None:
    from crm_territory_tests.support.mock_crm_writes import WRITE_TOKEN, run_writable_mock_api, set_fields

    with run_writable_mock_api(clients=20) as base_url:
        refused = set_fields(base_url, "100001", token=TEST_TOKEN, region="West")
        assert refused.status_code == 403 and "MOCK_CRM_WRITE_TOKEN" in refused.json()["detail"]
        created = httpx.post(f"{base_url}/clients", json={"client_name": "X"}, headers=auth_headers(TEST_TOKEN), timeout=10)
        assert created.status_code == 403
        for token in ("wrong-token-123", "x"):
            resp = set_fields(base_url, "100001", token=token, region="West")
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert httpx.patch(f"{base_url}/clients/100001", json={"region": "West"}, timeout=10).status_code == 401
        # the write token is for writing only: it cannot read the book or the feed
        for path in ("/clients", "/changes"):
            assert httpx.get(f"{base_url}{path}", headers=auth_headers(WRITE_TOKEN), timeout=10).status_code == 401
        for resp in (refused, created):
            assert TEST_TOKEN not in resp.text and WRITE_TOKEN not in resp.text
        # nothing was written by the refused requests
        assert httpx.get(f"{base_url}/changes", headers=auth_headers(), timeout=10).json()["data"] == []
        # bad writes: unknown client, unknown field, invalid status
        assert set_fields(base_url, "999999", region="West").status_code == 404
        assert set_fields(base_url, "100001", colour="red").status_code == 422
        assert set_fields(base_url, "100001", status="asleep").status_code == 422
        assert set_fields(base_url, "100001", region="West").status_code == 200


def test_without_a_write_token_the_book_is_read_only() -> None:
    from crm_territory_tests.support.mock_crm_writes import set_fields

    with run_mock_api(clients=20) as base_url:
        resp = set_fields(base_url, "100001", token=TEST_TOKEN, region="West")
        assert resp.status_code == 403 and "read-only" in resp.json()["detail"]
        assert set_fields(base_url, "100001", token="anything", region="West").status_code == 401


def test_write_token_settings() -> None:
    with pytest.raises(MockApiConfigError, match="must differ from CRM_API_TOKEN"):
        MockApiSettings.from_env({"CRM_API_TOKEN": "same", "MOCK_CRM_WRITE_TOKEN": "same"})
    with pytest.raises(MockApiConfigError, match="MOCK_CRM_CHANGE_LOG_SIZE"):
        MockApiSettings.from_env({"CRM_API_TOKEN": "t", "MOCK_CRM_CHANGE_LOG_SIZE": "0"})
    settings = MockApiSettings.from_env(
        {"CRM_API_TOKEN": "t", "MOCK_CRM_WRITE_TOKEN": "w-sekrit", "MOCK_CRM_CHANGE_LOG_SIZE": "5"}
    )
    assert settings.change_log_size == 5 and "w-sekrit" not in repr(settings)
    assert MockApiSettings.from_env({"CRM_API_TOKEN": "t", "MOCK_CRM_WRITE_TOKEN": "  "}).write_token == ""


def test_error_rate_applies_to_the_feed_and_to_writes_before_they_change_anything() -> None:
    from crm_territory_tests.support.mock_crm_writes import run_writable_mock_api, set_fields

    with run_writable_mock_api(clients=20, error_rate=1.0) as base_url:
        with httpx.Client(base_url=base_url, headers=auth_headers(), timeout=10.0) as reader:
            assert reader.get("/changes").status_code == 503
            assert set_fields(base_url, "100001", region="West").status_code == 503
            assert reader.get("/health").status_code == 200
            assert reader.get("/clients", params={"page_size": 1}).status_code == 503


def test_the_change_script_edits_a_client(monkeypatch) -> None:
    from crm_territory_tests.support.mock_crm_writes import WRITE_TOKEN, run_writable_mock_api

    with run_writable_mock_api(clients=20) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_CRM_", "CRM_API_"))}
        script = [sys.executable, "-m", "mock_api.change", "--url", base_url]

        def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*script, *args], env={**env, **extra}, capture_output=True, text=True, timeout=60)

        done = run("100003", "--region", "West", "--status", "inactive", MOCK_CRM_WRITE_TOKEN=WRITE_TOKEN)
        assert done.returncode == 0, done.stderr
        assert "status_change of client 100003" in done.stdout and "'West'" in done.stdout
        again = run("100003", "--region", "West", MOCK_CRM_WRITE_TOKEN=WRITE_TOKEN)
        assert again.returncode == 0 and "nothing changed" in again.stdout
        no_token = run("100003", "--region", "East")
        assert no_token.returncode == 2 and "MOCK_CRM_WRITE_TOKEN" in no_token.stderr
        read_token = run("100003", "--region", "East", MOCK_CRM_WRITE_TOKEN=TEST_TOKEN)
        assert read_token.returncode == 1 and "HTTP 403" in read_token.stderr and TEST_TOKEN not in read_token.stderr
        changes = httpx.get(f"{base_url}/changes", headers=auth_headers(), timeout=10).json()["data"]
        assert [(c["kind"], c["client_id"]) for c in changes] == [("status_change", "100003")]
