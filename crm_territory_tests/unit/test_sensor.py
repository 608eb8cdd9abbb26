"""crm_drop_sensor: one run per tick for every new or changed file in it, each file version taken once."""

import os

import dagster as dg

from crm_territory.defs.sources.automation import crm_drop_sensor
from crm_territory.resources.landing import LocalLandingZone


def tick(data_dir, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": LocalLandingZone(data_dir=str(data_dir))})
    return crm_drop_sensor(context)


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
    os.utime(drop, ns=(drop.stat().st_atime_ns, drop.stat().st_mtime_ns + 1_000_000_000))
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
    second = tick(data_dir, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].tags["crm/drop_files"] == "a.csv, b.csv"
    assert second.run_requests[0].tags["crm/drop_count"] == "2"
    # each file version is taken once: nothing new, no run; one more file, a run for that file only
    assert isinstance(tick(data_dir, second.cursor), dg.SkipReason)
    (data_dir / "landing" / "d.csv").write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
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
