"""raw_clients assembly: row judgement, quarantine with reasons, conservation, later drops win."""

import json

import pandas as pd

from crm_territory.logic.ingest.api_snapshot import merge_snapshot, newest_update, records_to_frame
from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import API_BATCH, LandingFile, assemble_raw_clients
from crm_territory.logic.integrity import unbalanced_batches
from crm_territory.logic.matching.client_dim import build_client_dim
from crm_territory.schemas import IngestManifest, QuarantinedClients, RawClients
from crm_territory_tests.support import SEED_SAMPLE, utc

HEADER = "client_id,client_name,region,segment,parent_org,advisor_email"
NOW = utc("2026-11-26T10:00:00")


def drop(name: str, text: str, mtime: str):
    data = text.encode()
    return LandingFile(name, len(data), utc(mtime)), read_drop(name, data)


def api_frame(records):
    return records_to_frame([(1, records)], NOW)


def test_bad_rows_are_quarantined_with_reason_and_original_values_and_the_rest_loads():
    bad = (
        "\n".join(
            [
                HEADER + ",status",
                "10,Good Client,NE,RET,,a@x.com,active",
                ",No Id Inc,NE,RET,,,",
                "11,,NE,RET,,,",
                "bad id!,Weird Id,NE,RET,,,",
                "12,Odd Status,NE,RET,,,prospect",
                "13,Too,Few",
            ]
        )
        + "\n"
    )
    result = assemble_raw_clients([drop("update.csv", bad, "2026-11-02")], None, NOW)
    assert result.raw_clients["client_id"].tolist() == ["10"]
    q = result.quarantined.set_index("source_row")
    assert q.loc[2, "reason"] == "missing client_id"
    assert q.loc[3, "reason"] == "missing client_name"
    assert q.loc[4, "reason"].startswith("invalid client_id 'bad id!'")
    assert q.loc[5, "reason"].startswith("unknown status 'prospect'")
    assert q.loc[6, "reason"].startswith("malformed row: 3 fields")
    assert json.loads(q.loc[3, "original_values"])["client_id"] == "11"
    assert json.loads(q.loc[6, "original_values"]) == {"raw_text": "13,Too,Few"}
    assert set(q["source_file"]) == {"update.csv"}
    manifest = result.manifest.set_index("batch").loc["update.csv"]
    assert (manifest["rows_read"], manifest["rows_loaded"], manifest["rows_quarantined"]) == (6, 1, 5)
    assert unbalanced_batches(result.manifest, result.raw_clients, result.quarantined).empty
    RawClients.validate(result.raw_clients)
    QuarantinedClients.validate(result.quarantined)
    IngestManifest.validate(result.manifest)


def test_a_rejected_file_does_not_stop_the_other_drops():
    result = assemble_raw_clients(
        [
            drop("clients.csv", SEED_SAMPLE, "2026-11-01"),
            (LandingFile("photo.csv", 4, utc("2026-11-02")), read_drop("photo.csv", b"\x89PNG\x00")),
        ],
        None,
        NOW,
    )
    assert len(result.raw_clients) == 3
    rejected = result.rejected_batches.set_index("batch")
    assert list(rejected.index) == ["photo.csv"]
    assert "photo.csv: the file is binary" in rejected.loc["photo.csv", "message"]


def test_a_later_drop_updates_the_clients_it_names_and_deletes_none(reference):
    update = f"{HEADER},status\n2,Beacon Wealth Mgmt,Northeast,Retail,Beacon Group,ADVISOR9@example.com,inactive\n4,Delta Partners,West,Retail,,advisor4@example.com,\n"
    # the update is named so it sorts first, but it is newer: modification time decides
    result = assemble_raw_clients(
        [drop("a_update.csv", update, "2026-11-05"), drop("clients.csv", SEED_SAMPLE, "2026-11-01")], None, NOW
    )
    assert len(result.raw_clients) == 5  # every version is kept in the raw layer
    dim = build_client_dim(result.raw_clients, reference).set_index("client_key")
    assert list(dim.index) == ["csv_drop:1", "csv_drop:2", "csv_drop:3", "csv_drop:4"]
    assert dim.loc["csv_drop:2", "client_name"] == "Beacon Wealth Mgmt"
    assert dim.loc["csv_drop:2", "primary_advisor_email"] == "advisor9@example.com"
    assert not dim.loc["csv_drop:2", "is_active"]
    assert dim.loc["csv_drop:1", "is_active"]
    assert (dim["source_record_count"] == 1).all()  # four records, four clients: nothing merged


def test_same_mtime_drops_apply_in_name_order(reference):
    a = f"{HEADER}\n1,Name From A,Northeast,Retail,,\n"
    b = f"{HEADER}\n1,Name From B,Northeast,Retail,,\n"
    result = assemble_raw_clients([drop("b.csv", b, "2026-11-01"), drop("a.csv", a, "2026-11-01")], None, NOW)
    assert build_client_dim(result.raw_clients, reference)["client_name"].tolist() == ["Name From B"]


def test_api_records_are_judged_like_drops_and_keyed_apart_from_them(reference):
    snapshot = api_frame(
        [
            {
                "client_id": "1",
                "client_name": "Api One",
                "region": "NE",
                "segment": "INST",
                "parent_org": None,
                "advisor_email": "x@y.com",
                "status": "active",
                "updated_at": "2026-03-01T00:00:00Z",
            },
            {
                "client_id": "2",
                "client_name": None,
                "region": "NE",
                "segment": "INST",
                "parent_org": None,
                "advisor_email": None,
                "status": "active",
                "updated_at": "2026-03-01T00:00:00Z",
            },
            {
                "client_id": "3",
                "client_name": "Bad Date",
                "region": "NE",
                "segment": "INST",
                "parent_org": None,
                "advisor_email": None,
                "status": "inactive",
                "updated_at": "yesterday",
            },
        ]
    )
    result = assemble_raw_clients([drop("clients.csv", SEED_SAMPLE, "2026-11-01")], snapshot, NOW)
    reasons = result.quarantined.set_index("source_record_id")["reason"]
    assert reasons["2"] == "missing client_name"
    assert reasons["3"].startswith("invalid updated_at 'yesterday'")
    dim = build_client_dim(result.raw_clients, reference).set_index("client_key")
    assert {"crm_api:1", "csv_drop:1"} <= set(dim.index)  # same id, two sources, two clients
    assert dim.loc["crm_api:1", "segment"] == "Institutional"
    api_row = result.manifest.set_index("batch").loc[API_BATCH]
    assert (api_row["rows_read"], api_row["rows_loaded"], api_row["rows_quarantined"]) == (3, 1, 2)


def test_unknown_region_is_kept_and_explained(reference):
    text = f"{HEADER}\n9,Pacific Co,Pacific Rim,Retail,,not-an-email\n"
    result = assemble_raw_clients([drop("x.csv", text, "2026-11-01")], None, NOW)
    dim = build_client_dim(result.raw_clients, reference)
    assert len(dim) == 1 and result.quarantined.empty
    row = dim.iloc[0]
    assert pd.isna(row["region"]) and row["segment"] == "Retail"
    assert row["primary_advisor_email"] is None
    assert row["data_issues"] == "unknown region 'Pacific Rim'; invalid advisor e-mail"


def test_incremental_api_snapshot_upserts_by_client_id_and_is_idempotent():
    first = api_frame(
        [
            {"client_id": "1", "client_name": "One", "updated_at": "2026-01-01T00:00:00Z"},
            {"client_id": "2", "client_name": "Two", "updated_at": "2026-02-01T00:00:00Z"},
        ]
    )
    assert newest_update(first) == utc("2026-02-01")
    pulled = api_frame(
        [
            {"client_id": "2", "client_name": "Two renamed", "updated_at": "2026-03-01T00:00:00Z"},
            {"client_id": "3", "client_name": "Three", "updated_at": "2026-03-02T00:00:00Z"},
        ]
    )
    merged = merge_snapshot(first, pulled)
    assert merged.set_index("client_id")["client_name"].to_dict() == {"1": "One", "2": "Two renamed", "3": "Three"}
    again = merge_snapshot(merged, pulled)
    pd.testing.assert_frame_equal(
        merged.sort_values("client_id").reset_index(drop=True), again.sort_values("client_id").reset_index(drop=True)
    )


def test_a_drop_without_status_keeps_the_status_an_earlier_drop_gave(reference):
    deactivate = f"{HEADER},status\n2,Beacon Wealth Management,Northeast,Retail,Beacon Group,advisor2@example.com,inactive\n"
    rename = f"{HEADER}\n2,Beacon Wealth Mgmt,Northeast,Retail,Beacon Group,advisor2@example.com\n"
    result = assemble_raw_clients(
        [
            drop("clients.csv", SEED_SAMPLE, "2026-11-01"),
            drop("deactivate.csv", deactivate, "2026-11-02"),
            drop("rename.csv", rename, "2026-11-03"),
        ],
        None,
        NOW,
    )
    dim = build_client_dim(result.raw_clients, reference).set_index("client_key")
    assert dim.loc["csv_drop:2", "client_name"] == "Beacon Wealth Mgmt"  # the latest drop's values
    assert not dim.loc["csv_drop:2", "is_active"]  # ... but it said nothing about status
    assert dim.loc["csv_drop:1", "is_active"]


def test_numeric_api_ids_stay_integers_as_text_even_beside_missing_ids():
    snapshot = records_to_frame([(1, [{"client_id": 100001, "client_name": "A"}, {"client_id": None, "client_name": "B"}])], NOW)
    assert snapshot["client_id"].tolist() == ["100001", None]


def test_a_record_sent_twice_in_one_pull_is_kept_once_newest_first():
    pulled = records_to_frame(
        [
            (1, [{"client_id": "9", "client_name": "Old", "updated_at": "2026-01-01T00:00:00Z"}]),
            (2, [{"client_id": "9", "client_name": "New", "updated_at": "2026-01-02T00:00:00Z"}]),
        ],
        NOW,
    )
    assert merge_snapshot(None, pulled)["client_name"].tolist() == ["New"]


def test_a_future_timestamp_does_not_freeze_incremental_pulls():
    snapshot = api_frame(
        [{"client_id": "1", "updated_at": "2099-01-01T00:00:00Z"}, {"client_id": "2", "updated_at": "2026-03-01T00:00:00Z"}]
    )
    assert newest_update(snapshot) == NOW  # capped at the time of the pull


def test_size_and_kind_columns_are_parsed_and_bad_amounts_explained(reference):
    text = f"{HEADER},aum_usd,business_type\n1,Atlas,NE,INST,,,250000000.50,Family Office\n2,Beacon,NE,RET,,,lots,\n3,Cedar,NE,RET,,,-5,Trust\n"
    result = assemble_raw_clients([drop("sized.csv", text, "2026-11-01")], None, NOW)
    dim = build_client_dim(result.raw_clients, reference).set_index("client_key")
    assert dim.loc["csv_drop:1", "aum_usd"] == 250000000.50 and dim.loc["csv_drop:1", "business_type"] == "Family Office"
    assert pd.isna(dim.loc["csv_drop:2", "aum_usd"]) and "invalid aum_usd 'lots'" in dim.loc["csv_drop:2", "data_issues"]
    assert pd.isna(dim.loc["csv_drop:3", "aum_usd"]) and "invalid aum_usd '-5'" in dim.loc["csv_drop:3", "data_issues"]
    assert dim["aum_usd"].dtype == "float64"


def test_a_deferred_file_keeps_its_previous_version_and_rows_stay_conserved():
    first = assemble_raw_clients(
        [drop("clients.csv", HEADER + "\n1,Alpha,NE,RET,,\n2,,NE,RET,,\n", "2026-11-25T09:00:00")], None, NOW
    )
    assert len(first.raw_clients) == 1 and len(first.quarantined) == 1
    rewritten = LandingFile("clients.csv", 999, utc("2026-11-26T09:59:58"))  # being rewritten in place
    other = drop("other.csv", HEADER + "\n3,Gamma,NE,RET,,\n", "2026-11-26T09:00:00")
    later = utc("2026-11-26T11:00:00")
    second = assemble_raw_clients(
        [other],
        None,
        later,
        deferred=[(rewritten, "still being written? it changed 2 s ago")],
        previous_raw=first.raw_clients,
        previous_quarantined=first.quarantined,
    )
    manifest = second.manifest.set_index("batch")
    row = manifest.loc["clients.csv"]
    assert row["status"] == "deferred" and row["size_bytes"] == 999
    assert (row["rows_read"], row["rows_loaded"], row["rows_quarantined"]) == (2, 1, 1)
    assert row["message"].startswith("deferred, still being written? it changed 2 s ago; until then its previous version")
    assert sorted(second.raw_clients["client_id"]) == ["1", "3"]  # Alpha did not vanish for a run
    carried = second.raw_clients.set_index("client_id").loc["1"]
    assert carried["ingested_at"] == NOW  # as the earlier run read it
    assert unbalanced_batches(second.manifest, second.raw_clients, second.quarantined).empty
    IngestManifest.validate(second.manifest)


def test_a_deferred_new_file_loads_nothing_yet_and_says_so():
    new = LandingFile("new.csv", 40, utc("2026-11-26T09:59:59"))
    result = assemble_raw_clients([], None, NOW, deferred=[(new, "still being written? it changed 1 s ago")])
    row = result.manifest.set_index("batch").loc["new.csv"]
    assert row["status"] == "deferred" and row["rows_read"] == 0 and "no earlier version of it was loaded" in row["message"]
    assert result.raw_clients.empty and result.quarantined.empty
    assert result.rejected_batches.empty  # deferred is not rejected: the landing_files_accepted check stays green
