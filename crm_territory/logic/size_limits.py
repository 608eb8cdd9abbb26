"""Size limits on the files people write (rules, match decisions): one reading, one message.

A file written by people is small; one far larger was generated or pasted by mistake, and reading it
whole could take minutes and gigabytes before any check runs (the probe's 50 MB rules file took
314 s and 7.65 GB to load). So the file is read with a bound, never more than ``limit + 1`` bytes,
and refused with a message naming its size, the limit and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path


class FileTooLarge(ValueError):
    """The file is over its size limit; the message says how much, the limit and what to do (without the path)."""


def too_large(size: int, limit: int, what: str, remedy: str) -> str:
    """``the rules file is 1,200,000 bytes; a rules file may have at most 1,000,000 bytes: <remedy>``."""
    return f"the {what} is {size:,} bytes; a {what} may have at most {limit:,} bytes: {remedy}"


def read_at_most(path: Path, limit: int, what: str, remedy: str) -> bytes:
    """The file's bytes, or ``FileTooLarge`` when it holds more than ``limit`` (memory stays bounded either way)."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
        if len(data) > limit:
            size = max(os.fstat(handle.fileno()).st_size, len(data))  # a pipe or a growing file: at least what was read
            raise FileTooLarge(too_large(size, limit, what, remedy))
    return data
