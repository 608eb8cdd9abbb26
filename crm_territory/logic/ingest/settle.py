"""A landing file is taken only once it is settled: unchanged (same size and mtime) for a settle interval.

A file written in place (no ``.part`` name) is visible while it grows: the probe's 80 s writer was
ingested three times half-written, and a row cut inside its e-mail became a client version that stays
in both history tables. A drop is therefore taken only when nothing has written to it for
``CRM_LANDING_SETTLE_SECONDS``, judged two ways:

- its modification time is at least the interval old (every write moves it to "now"), or
- it was *seen* unchanged over the interval (two looks that far apart): this also settles a file
  whose mtime lies in the future (another host's clock), which would otherwise never age.

A run that finds a younger file waits for it (at most the interval, once), then looks again; a file
still changing is deferred, not read: recorded in ``ingest_manifest``, read by a later run. A file that
changes while it is being read is deferred too (it is looked at again after the read). The drop sensor
cannot wait: it skips an unsettled file, says so in its tick, and takes it at a later tick.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from crm_territory.logic.ingest.raw_clients import LandingFile

STILL_WRITTEN = "still being written"  # the words every deferral starts with (the manifest and the sensor say it)


def age_seconds(file: LandingFile, now: pd.Timestamp) -> float:
    """Seconds since the file was last written (negative when its mtime is in the future)."""
    return (now - file.modified_at).total_seconds()


def is_settled(file: LandingFile, now: pd.Timestamp, settle_seconds: float) -> bool:
    return age_seconds(file, now) >= settle_seconds


def young_reason(file: LandingFile, now: pd.Timestamp, settle_seconds: float) -> str:
    age = age_seconds(file, now)
    when = f"{age:.0f} s ago" if age >= 0 else f"{-age:.0f} s in the future (its clock is ahead)"
    return (
        f"{STILL_WRITTEN}? it changed {when}; a drop is read once it is unchanged for {settle_seconds:g} s "
        "(CRM_LANDING_SETTLE_SECONDS)"
    )


def wait_for(files: Iterable[LandingFile], now: pd.Timestamp, settle_seconds: float) -> float:
    """How long to wait before looking again so that every young file has either aged or been seen unchanged
    for the whole interval (at most ``settle_seconds``); 0 when every file is settled."""
    waits = [min(settle_seconds, settle_seconds - age_seconds(f, now)) for f in files if not is_settled(f, now, settle_seconds)]
    return max(waits, default=0.0)


def same_version(a: LandingFile, b: LandingFile | None) -> bool:
    return b is not None and (a.size, a.modified_at) == (b.size, b.modified_at)


def changed_reason(before: LandingFile, after: LandingFile | None, while_what: str) -> str:
    """Why a file seen as ``before`` and then as ``after`` is deferred, in words."""
    if after is None:
        return f"{STILL_WRITTEN}: it disappeared {while_what} (renamed or replaced); it is read by a later run"
    return (
        f"{STILL_WRITTEN}: it changed {while_what} (size {before.size:,} -> {after.size:,} bytes, "
        f"modified {before.modified_at:%H:%M:%S} -> {after.modified_at:%H:%M:%S} UTC); "
        "not read now, nothing from this version is loaded; it is read by a later run once it is settled"
    )


def read_changed_reason(before: LandingFile, after: LandingFile | None, bytes_read: int) -> str | None:
    """None if the file was the same before and after it was read (and the read got all of it); else why not."""
    if same_version(before, after) and bytes_read == before.size:
        return None
    if same_version(before, after):
        return (
            f"{STILL_WRITTEN}: {bytes_read:,} bytes were read but the file is {before.size:,} bytes long; "
            "it is read by a later run once it is settled"
        )
    return changed_reason(before, after, "while it was being read")


def split_settled(
    files: list[LandingFile], pending: dict[str, list[str]], now: pd.Timestamp, settle_seconds: float
) -> tuple[list[LandingFile], dict[str, str], dict[str, list[str]]]:
    """For the drop sensor, which cannot wait: (settled files, {unsettled name: why}, the pending entries to keep).

    ``pending`` is {name: [version, when first seen (ISO)]} of the files an earlier tick found unsettled: one
    seen unchanged for the whole interval is settled, whatever its mtime says. A refused file is "settled": it
    is never read, and the run that sees it records why.
    """
    settled: list[LandingFile] = []
    waiting: dict[str, str] = {}
    still_pending: dict[str, list[str]] = {}
    for f in files:
        version, first_seen = pending.get(f.name) or (f.version, now.isoformat())
        if version != f.version:
            first_seen = now.isoformat()  # changed since the last tick: the interval starts again
        seen_unchanged = (now - pd.Timestamp(first_seen)).total_seconds() >= settle_seconds
        if f.refusal or is_settled(f, now, settle_seconds) or seen_unchanged:
            settled.append(f)
            continue
        waiting[f.name] = young_reason(f, now, settle_seconds)
        still_pending[f.name] = [f.version, first_seen]
    return settled, waiting, still_pending
