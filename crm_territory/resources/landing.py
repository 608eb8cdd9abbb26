"""The landing zone where CRM drops arrive, behind an abstract resource.

The drop sensor and ``raw_clients`` only use ``list_files`` and ``read_bytes``, so a cloud
bucket can replace the local folder by subclassing, without touching either.
"""

import os
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
import pandas as pd

from crm_territory.logic.ingest.raw_clients import LandingFile
from crm_territory.resources.fixed_at_load import FixedAtLoad

SYMLINK_REFUSAL = (
    "a symbolic link: links in the landing zone are never followed (they could point anywhere on this machine); "
    "copy the file itself into landing/"
)
NON_UTF8_NAME_REFUSAL = (
    "the file name is not UTF-8 (shown with its bytes escaped); rename the file and it is read on the next run"
)


def readable_name(name: str) -> str:
    """A directory entry's name as text people and every table can hold: bytes that are not UTF-8 shown as \\xNN.

    Python hands such names over with surrogate escapes, which no UTF-8 writer accepts: one such
    file failed the whole ingest with an error that named no file.
    """
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _is_candidate(name: str) -> bool:
    # Hidden files and partial uploads (".x", "x.tmp", "x.part", "~$x") are not drops yet.
    return not (name.startswith((".", "~")) or name.endswith((".tmp", ".part", ".crdownload")))


class LandingZone(FixedAtLoad, dg.ConfigurableResource, ABC):
    """Where drops arrive: fixed when the definitions load, no run config can move it (``FixedAtLoad``; a subclass
    that reads a bucket adds its field to ``DESTINATION_FIELDS``)."""

    @abstractmethod
    def list_files(self) -> list[LandingFile]: ...

    @abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def describe(self) -> str: ...


class LocalLandingZone(LandingZone):
    """Drops in ``<data_dir>/landing``. The engine never moves or deletes a drop; it records what it read."""

    data_dir: str

    @property
    def landing_dir(self) -> Path:
        return Path(self.data_dir) / "landing"

    def describe(self) -> str:
        return str(self.landing_dir)

    def list_files(self) -> list[LandingFile]:
        if not self.landing_dir.is_dir():
            # an empty list would look like "every client left": say what is wrong instead
            raise FileNotFoundError(
                f"The landing folder {self.landing_dir} does not exist. Set CRM_DATA_DIR to the data folder that "
                "holds landing/ and reference/ (or create landing/ there)."
            )
        files = []
        for path in sorted(self.landing_dir.iterdir()):
            name = readable_name(path.name)
            if not _is_candidate(name):
                continue
            stat = path.lstat()  # the entry itself: a link is judged as a link, never followed
            modified = pd.Timestamp(stat.st_mtime_ns, unit="ns", tz="UTC")
            if path.is_symlink():
                files.append(LandingFile(name, 0, modified, refusal=SYMLINK_REFUSAL))
            elif not path.is_file():
                continue  # folders and devices are not drops
            elif name != path.name:
                files.append(LandingFile(name, stat.st_size, modified, refusal=NON_UTF8_NAME_REFUSAL))
            else:
                files.append(LandingFile(name, stat.st_size, modified))
        return files

    def read_bytes(self, name: str) -> bytes:
        # O_NOFOLLOW: a drop swapped for a link after it was listed is refused, not followed
        fd = os.open(self.landing_dir / name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
