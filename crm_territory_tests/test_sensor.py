"""crm_drop_sensor: one run per new or changed file, exactly once."""

import os

import dagster as dg

from crm_territory.defs.automation import crm_drop_sensor
from crm_territory.resources.landing import LocalLandingZone


def tick(data_dir, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": LocalLandingZone(data_dir=str(data_dir))})
    return crm_drop_sensor(context)


def test_new_file_then_same_file_then_changed_file(data_dir):
    first = tick(data_dir)
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags["crm/drop_file"] == "clients.csv"
    assert request.run_key.startswith("clients.csv:")

    second = tick(data_dir, first.cursor)
    assert isinstance(second, dg.SkipReason)
    assert "Saw 1 file(s)" in second.skip_message and "none new or changed" in second.skip_message

    drop = data_dir / "landing" / "clients.csv"
    drop.write_text(drop.read_text() + "4,Delta Partners,West,Retail,,advisor4@example.com\n")
    os.utime(drop, ns=(drop.stat().st_atime_ns, drop.stat().st_mtime_ns + 1_000_000_000))
    third = tick(data_dir, first.cursor)
    assert [r.tags["crm/drop_file"] for r in third.run_requests] == ["clients.csv"]
    assert third.run_requests[0].run_key != request.run_key


def test_several_new_files_give_one_run_each_and_partial_uploads_are_ignored(data_dir):
    first = tick(data_dir)
    for name in ["b.csv", "a.csv", "c.csv.part", ".hidden.csv"]:
        (data_dir / "landing" / name).write_text("client_id,client_name,region,segment,parent_org,advisor_email\n")
    second = tick(data_dir, first.cursor)
    assert sorted(r.tags["crm/drop_file"] for r in second.run_requests) == ["a.csv", "b.csv"]
    assert len({r.run_key for r in second.run_requests}) == 2


def test_empty_landing_zone_skips_saying_what_it_saw(tmp_path):
    (tmp_path / "landing").mkdir()
    result = tick(tmp_path)
    assert isinstance(result, dg.SkipReason)
    assert "Saw 0 file(s)" in result.skip_message


def test_a_missing_landing_folder_is_an_error_not_an_empty_zone(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="landing folder .* does not exist. Set CRM_DATA_DIR"):
        tick(tmp_path)
