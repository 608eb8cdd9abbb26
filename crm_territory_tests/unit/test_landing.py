"""The local landing zone: what it lists, what it refuses by name without reading it."""

import os
import time

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


# --------------------------------------------------------------------------- settling (issue 10, finding 5)

HEADER = "client_id,client_name,region,segment,parent_org,advisor_email\n"


def landing_with(tmp_path, settle_seconds: float, **files: str) -> LocalLandingZone:
    (tmp_path / "landing").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "landing" / f"{name}.csv").write_text(text)
    return LocalLandingZone(data_dir=str(tmp_path), settle_seconds=settle_seconds)


def test_a_fresh_file_is_waited_for_then_read_whole(tmp_path):
    landing = landing_with(tmp_path, 0.5, fresh=HEADER + "1,Alpha,West,Retail,,\n")
    said: list[str] = []
    started = time.monotonic()
    [taken] = landing.take(log=said.append)
    assert time.monotonic() - started >= 0.4  # it waited until nothing had written for the interval
    assert taken.deferred is None and taken.data == (HEADER + "1,Alpha,West,Retail,,\n").encode()
    assert said and "Waiting" in said[0] and "fresh.csv" in said[0]


def test_a_settled_file_is_read_at_once(tmp_path):
    landing = landing_with(tmp_path, 30.0, old=HEADER)
    old = time.time() - 60
    os.utime(tmp_path / "landing" / "old.csv", (old, old))  # e.g. the sample drop of a clone made a minute ago
    started = time.monotonic()
    [taken] = landing.take()
    assert time.monotonic() - started < 5 and taken.data == HEADER.encode()


def test_a_file_still_written_during_the_wait_is_deferred_not_read(tmp_path):
    landing = landing_with(tmp_path, 0.3, writing=HEADER + "7,Half Written Co,West,Ret", done=HEADER)
    old = time.time() - 60
    os.utime(tmp_path / "landing" / "done.csv", (old, old))

    def sleep_while_the_writer_goes_on(seconds: float) -> None:
        time.sleep(seconds / 2)
        with (tmp_path / "landing" / "writing.csv").open("a") as handle:
            handle.write("ail,,advisor7@example.com\n8,Next Co,We")  # flushed mid-row again
        time.sleep(seconds / 2)

    taken = {t.file.name: t for t in landing.take(sleep=sleep_while_the_writer_goes_on)}
    assert taken["done.csv"].data == HEADER.encode()
    writing = taken["writing.csv"]
    assert writing.data is None
    assert writing.deferred is not None and writing.deferred.startswith(
        "still being written: it changed during the 0.3 s settle wait"
    )
    assert "nothing from this version is loaded; it is read by a later run" in writing.deferred


class WrittenWhileRead(LocalLandingZone):
    """The landing folder with a writer that appends to a drop while the run reads it (between read and re-look)."""

    def read_bytes(self, name: str) -> bytes:
        data = super().read_bytes(name)
        with (self.landing_dir / name).open("a") as handle:
            handle.write("9,Grown Meanwhile,West,Retail,,\n")
        return data


def test_a_file_that_grows_while_it_is_read_is_deferred(tmp_path):
    (tmp_path / "landing").mkdir()
    path = tmp_path / "landing" / "growing.csv"
    path.write_text(HEADER + "1,Alpha,West,Retail,,\n")
    old = time.time() - 60
    os.utime(path, (old, old))  # settled by its mtime: only the look after the read can catch the writer
    [taken] = WrittenWhileRead(data_dir=str(tmp_path), settle_seconds=5.0).take()
    assert taken.data is None
    assert taken.deferred is not None and "it changed while it was being read (size 84 -> 116 bytes" in taken.deferred
