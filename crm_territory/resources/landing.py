"""The landing zone where CRM drops arrive, behind an abstract resource.

The drop sensor and ``raw_clients`` only use ``list_files`` and ``read_bytes``, so a cloud
bucket can replace the local folder by subclassing, without touching either.
"""

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
import pandas as pd

from crm_territory.logic.ingest.raw_clients import LandingFile


def _is_candidate(name: str) -> bool:
    # Hidden files and partial uploads (".x", "x.tmp", "x.part", "~$x") are not drops yet.
    return not (name.startswith((".", "~")) or name.endswith((".tmp", ".part", ".crdownload")))


class LandingZone(dg.ConfigurableResource, ABC):
    """Where drops arrive."""

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
            if not path.is_file() or not _is_candidate(path.name):
                continue
            stat = path.stat()
            files.append(LandingFile(path.name, stat.st_size, pd.Timestamp(stat.st_mtime_ns, unit="ns", tz="UTC")))
        return files

    def read_bytes(self, name: str) -> bytes:
        return (self.landing_dir / name).read_bytes()
