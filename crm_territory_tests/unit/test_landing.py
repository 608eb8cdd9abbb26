"""The local landing zone: what it lists, what it refuses by name without reading it."""

import os

import pytest

from crm_territory.resources.landing import NON_UTF8_NAME_REFUSAL, SYMLINK_REFUSAL, LocalLandingZone

HEADER = "client_id,client_name,region,segment,parent_org,advisor_email\n"


def test_links_and_names_that_are_not_utf8_are_listed_as_refused_and_never_read(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.csv").write_text(HEADER)
    (landing / "passwd.csv").symlink_to("/etc/passwd")  # the probe's: its lines reached the manifest and the log
    os.close(os.open(os.path.join(os.fsencode(landing), b"caf\xe9.csv"), os.O_CREAT | os.O_WRONLY))  # a latin-1 name
    (landing / "sub").mkdir()

    files = {f.name: f for f in LocalLandingZone(data_dir=str(tmp_path)).list_files()}
    assert set(files) == {"good.csv", "passwd.csv", "caf\\xe9.csv"}  # the folder is no drop
    assert files["good.csv"].refusal is None
    assert files["passwd.csv"].refusal == SYMLINK_REFUSAL and files["passwd.csv"].size == 0
    assert files["caf\\xe9.csv"].refusal == NON_UTF8_NAME_REFUSAL
    # a name every table and log can hold: Python's own (surrogate-escaped) name would raise here
    assert files["caf\\xe9.csv"].name.encode("utf-8") == b"caf\\xe9.csv"


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "drop.csv").symlink_to("/etc/passwd")
    with pytest.raises(OSError):
        LocalLandingZone(data_dir=str(tmp_path)).read_bytes("drop.csv")
