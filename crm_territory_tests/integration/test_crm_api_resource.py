"""The CRM API resource against the real mock API over HTTP: pagination, retries, clear failures."""

import pytest

from crm_territory.resources.crm_api import CrmApiError, CrmApiResource
from crm_territory_tests.support.mock_api_server import TEST_TOKEN, run_mock_api

pytestmark = pytest.mark.integration


def resource(base_url: str, **overrides) -> CrmApiResource:
    settings = {"base_url": base_url, "token": TEST_TOKEN, "page_size": 100, "backoff_seconds": 0.01, **overrides}
    return CrmApiResource(**settings)


def ids(pages):
    return [r["client_id"] for _, records in pages for r in records]


def test_every_client_exactly_once_across_pages():
    with run_mock_api(clients=450) as url:
        pages = resource(url).fetch_clients()
    assert [p for p, _ in pages] == [1, 2, 3, 4, 5]
    assert len(ids(pages)) == 450 == len(set(ids(pages)))


def test_transient_errors_are_retried_until_the_load_is_complete():
    with run_mock_api(clients=450) as url:
        clean = resource(url).fetch_clients()
    with run_mock_api(clients=450, error_rate=0.4, fault_seed=3) as url:
        messages = []
        flaky = resource(url, max_retries=8).fetch_clients(log=messages.append)
    assert sorted(ids(flaky)) == sorted(ids(clean))
    assert any("HTTP 503" in m and "retry" in m for m in messages)


def test_a_page_that_keeps_failing_fails_the_pull_naming_the_page():
    with run_mock_api(clients=450, fail_pages="3") as url:
        with pytest.raises(CrmApiError, match=r"page 3 still failed after 2 retries \(last: HTTP 500\)\. Nothing was loaded"):
            resource(url, max_retries=2).fetch_clients()


def test_a_wrong_token_fails_at_once_and_says_which_variable_to_check():
    with run_mock_api(clients=50) as url:
        with pytest.raises(CrmApiError, match="HTTP 401.*CRM_API_TOKEN") as error:
            resource(url, token="wrong-token").fetch_clients()
    assert "wrong-token" not in str(error.value)


def test_an_unreachable_api_fails_after_the_retries():
    with pytest.raises(CrmApiError, match=r"still failed after 1 retries \(last: ConnectError"):
        resource("http://127.0.0.1:9", max_retries=1, timeout_seconds=1).fetch_clients()


def test_updated_since_pulls_only_newer_records():
    import pandas as pd

    with run_mock_api(clients=300) as url:
        everything = resource(url).fetch_clients()
        stamps = sorted(r["updated_at"] for _, records in everything for r in records)
        since = pd.Timestamp(stamps[200])
        newer = resource(url).fetch_clients(updated_since=since)
    expected = sum(1 for s in stamps if pd.Timestamp(s) >= since)
    assert len(ids(newer)) == expected
    assert 0 < expected < 300


# --- the change feed ----------------------------------------------------------------


def test_the_change_feed_is_read_page_by_page_from_a_cursor():
    from crm_territory_tests.support.mock_crm_writes import run_writable_mock_api, set_fields

    with run_writable_mock_api(clients=50) as url:
        api = resource(url, page_size=2)  # two changes a page: the cursor must carry the read across pages
        start = api.fetch_changes(None)
        assert start.changes == [] and start.cursor is not None and not start.more
        for n, client_id in enumerate(["100001", "100002", "100003", "100004", "100005"]):
            set_fields(url, client_id, client_name=f"Renamed {n}").raise_for_status()
        batch = api.fetch_changes(start.cursor)
        assert [c["client_id"] for c in batch.changes] == ["100001", "100002", "100003", "100004", "100005"]
        assert batch.cursor == batch.changes[-1]["cursor"] and not batch.more
        assert api.fetch_changes(batch.cursor).changes == []
        # a cap on one read: the rest waits behind the cursor it returns
        capped = api.fetch_changes(start.cursor, max_changes=3)
        assert len(capped.changes) == 3 and capped.more
        assert [c["client_id"] for c in api.fetch_changes(capped.cursor).changes] == ["100004", "100005"]


def test_the_change_feed_is_retried_through_transient_errors():
    from crm_territory_tests.support.mock_crm_writes import run_writable_mock_api, set_fields

    with run_writable_mock_api(clients=20, error_rate=0.4, fault_seed=3) as url:
        for client_id in ["100001", "100002", "100003"]:
            for _ in range(10):  # the writes meet the same injected 503s; an injected failure changed nothing
                if set_fields(url, client_id, region="West").status_code != 503:
                    break
        messages = []
        batch = resource(url, page_size=1, max_retries=8).fetch_changes(None, log=messages.append)
    assert [c["client_id"] for c in batch.changes] == ["100001", "100002", "100003"]
    assert any("/changes" in m and "HTTP 503" in m and "retry" in m for m in messages)


def test_an_expired_cursor_is_recognised_and_names_the_head():
    from crm_territory.resources.crm_api import ChangeFeedExpired
    from crm_territory_tests.support.mock_crm_writes import run_writable_mock_api, set_fields

    with run_writable_mock_api(clients=20, change_log_size=2) as url:
        api = resource(url)
        start = api.fetch_changes(None).cursor
        for client_id in ["100001", "100002", "100003"]:
            set_fields(url, client_id, region="West").raise_for_status()
        with pytest.raises(ChangeFeedExpired, match=r"cannot continue from cursor .* \(HTTP 410\): .*expired") as gap:
            api.fetch_changes(start)
        head = api.fetch_changes(None).cursor
        assert gap.value.head == head
        with pytest.raises(ChangeFeedExpired, match="another change log"):
            api.fetch_changes("0badc0de.1")
        with pytest.raises(CrmApiError, match="HTTP 422"):
            api.fetch_changes("not-a-cursor")
        with pytest.raises(CrmApiError, match="HTTP 401.*CRM_API_TOKEN"):
            resource(url, token="wrong-token").fetch_changes(None)
