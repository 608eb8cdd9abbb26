"""crm_drop_sensor: one run per tick for every new or changed file in it, each file version taken once, once settled."""

import json
import os
import time

import dagster as dg

from crm_territory.defs.sources.automation import crm_drop_sensor
from crm_territory.resources.landing import LocalLandingZone

SETTLE = 15.0  # the default interval: the tests below that write a drop mark it finished a minute ago


def tick(data_dir, cursor=None, settle_seconds=SETTLE):
    landing = LocalLandingZone(data_dir=str(data_dir), settle_seconds=settle_seconds)
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": landing})
    return crm_drop_sensor(context)


def finished(path, seconds_ago: float = 60.0):
    """A drop its writer finished ``seconds_ago``: its mtime then (the sensor judges settling by it)."""
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def skip_message(result) -> str:
    skip = result if isinstance(result, dg.SkipReason) else result.skip_reason
    assert skip is not None and not (isinstance(result, dg.SensorResult) and result.run_requests), result
    return skip.skip_message or ""


WRITING = "client_id,client_name,region,segment,parent_org,advisor_email\n7,Half Written Co,West,Ret"


def test_new_file_then_same_file_then_changed_file(data_dir):
    first = tick(data_dir)
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags["crm/drop_files"] == "clients.csv" and request.tags["crm/drop_count"] == "1"
    assert request.run_key.startswith("drops:")

    second = tick(data_dir, first.cursor)
    assert isinstance(second, dg.SkipReason)
    assert "Saw 1 file(s)" in second.skip_message and "none new or changed" in second.skip_message

    drop = data_dir / "landing" / "clients.csv"
    drop.write_text(drop.read_text() + "4,Delta Partners,West,Retail,,advisor4@example.com\n")
    finished(drop, 30)
    third = tick(data_dir, first.cursor)
    assert [r.tags["crm/drop_files"] for r in third.run_requests] == ["clients.csv"]
    assert third.run_requests[0].run_key != request.run_key
    # the same tick evaluated again (a daemon restart before the cursor was saved) asks for the same run key,
    # which Dagster never launches twice
    assert tick(data_dir, first.cursor).run_requests[0].run_key == third.run_requests[0].run_key


def test_a_burst_of_new_files_is_one_run_and_partial_uploads_are_ignored(data_dir):
    first = tick(data_dir)
    for name in ["b.csv", "a.csv", "c.csv.part", ".hidden.csv"]:
        (data_dir / "landing" / name).write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
        finished(data_dir / "landing" / name)
    second = tick(data_dir, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].tags["crm/drop_files"] == "a.csv, b.csv"
    assert second.run_requests[0].tags["crm/drop_count"] == "2"
    # each file version is taken once: nothing new, no run; one more file, a run for that file only
    assert isinstance(tick(data_dir, second.cursor), dg.SkipReason)
    (data_dir / "landing" / "d.csv").write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
    finished(data_dir / "landing" / "d.csv")
    third = tick(data_dir, second.cursor)
    assert [r.tags["crm/drop_files"] for r in third.run_requests] == ["d.csv"]
    assert len({first.run_requests[0].run_key, second.run_requests[0].run_key, third.run_requests[0].run_key}) == 3


def test_empty_landing_zone_skips_saying_what_it_saw(tmp_path):
    (tmp_path / "landing").mkdir()
    result = tick(tmp_path)
    assert isinstance(result, dg.SkipReason)
    assert "Saw 0 file(s)" in result.skip_message


def test_a_missing_landing_folder_is_an_error_not_an_empty_zone(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="landing folder .* does not exist. Set CRM_DATA_DIR"):
        tick(tmp_path)


def test_a_file_changed_within_the_interval_is_skipped_saying_why_then_taken_once_settled(data_dir):
    first = tick(data_dir, settle_seconds=1.0)
    assert [r.tags["crm/drop_files"] for r in first.run_requests] == ["clients.csv"]
    writing = data_dir / "landing" / "2026-11-30_crm.csv"
    writing.write_text(WRITING)  # in place, no .part name, cut mid-row: the probe's writer
    second = tick(data_dir, first.cursor, settle_seconds=1.0)
    message = skip_message(second)
    assert "Not settled yet, taken at a later tick: 2026-11-30_crm.csv (still being written?" in message
    assert "unchanged for 1 s (CRM_LANDING_SETTLE_SECONDS)" in message
    with writing.open("a") as handle:  # the writer goes on
        handle.write("ail,,advisor7@example.com\n")
    assert isinstance(tick(data_dir, second.cursor, settle_seconds=1.0), (dg.SkipReason, dg.SensorResult))
    time.sleep(1.1)  # nothing writes for the whole interval: settled
    third = tick(data_dir, second.cursor, settle_seconds=1.0)
    assert [r.tags["crm/drop_files"] for r in third.run_requests] == ["2026-11-30_crm.csv"]
    assert third.run_requests[0].tags["crm/drop_bytes"] == str(writing.stat().st_size)  # the whole file
    assert isinstance(tick(data_dir, third.cursor, settle_seconds=1.0), dg.SkipReason)  # taken once


def test_a_settled_file_runs_while_a_file_still_written_waits_for_a_later_tick(data_dir):
    first = tick(data_dir)
    done = data_dir / "landing" / "a_done.csv"
    done.write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
    finished(done)
    (data_dir / "landing" / "b_writing.csv").write_text(WRITING)
    second = tick(data_dir, first.cursor)
    assert [r.tags["crm/drop_files"] for r in second.run_requests] == ["a_done.csv"]
    assert "b_writing.csv" not in json.loads(second.cursor)  # not taken: new again once settled
    finished(data_dir / "landing" / "b_writing.csv")
    third = tick(data_dir, second.cursor)
    assert [r.tags["crm/drop_files"] for r in third.run_requests] == ["b_writing.csv"]


def test_a_file_dated_in_the_future_is_taken_once_seen_unchanged_for_the_interval(data_dir):
    first = tick(data_dir, settle_seconds=1.0)
    ahead = data_dir / "landing" / "from_a_fast_clock.csv"
    ahead.write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
    future = time.time() + 3600  # another host's clock, an hour ahead: its mtime never ages here
    os.utime(ahead, (future, future))
    second = tick(data_dir, first.cursor, settle_seconds=1.0)
    assert "s in the future (its clock is ahead)" in skip_message(second)
    time.sleep(1.1)
    third = tick(data_dir, second.cursor, settle_seconds=1.0)
    assert [r.tags["crm/drop_files"] for r in third.run_requests] == ["from_a_fast_clock.csv"]
