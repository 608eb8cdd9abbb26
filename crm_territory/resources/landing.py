"""The landing zone where CRM drops arrive, behind an abstract resource.

The drop sensor and ``raw_clients`` only use ``list_files``, ``read_bytes`` and ``take`` (which is
written over those two), so a cloud bucket can replace the local folder by subclassing, without
touching either.
"""

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
from pydantic import Field

from crm_territory.logic.ingest.layouts import Layouts, load_layouts, read_layout_folder
from crm_territory.logic.ingest.raw_clients import LandingFile
from crm_territory.logic.ingest.settle import changed_reason, is_settled, read_changed_reason, same_version, wait_for
from crm_territory.resources.fixed_at_load import FixedAtLoad
from crm_territory.settings import load_settings

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


@dataclass(frozen=True)
class Taken:
    """A landing file as a run takes it: its bytes, or why it is not read (refused for good, or deferred for now)."""

    file: LandingFile
    data: bytes | None = None
    deferred: str | None = None


def _settle_seconds_of_the_definitions() -> float:
    # read when the definitions build the resource (CRM_LANDING_SETTLE_SECONDS), like the data folder
    return load_settings().landing_settle_seconds


class LandingZone(FixedAtLoad, dg.ConfigurableResource, ABC):
    """Where drops arrive: fixed when the definitions load, no run config can move it (``FixedAtLoad``; a subclass
    that reads a bucket adds its field to ``DESTINATION_FIELDS``)."""

    settle_seconds: float = Field(default_factory=_settle_seconds_of_the_definitions, ge=0)
    """A drop is taken once unchanged for this long (``crm_territory.logic.ingest.settle``)."""

    # from the environment only: a run config setting 0 would let a half-written file in again
    extra_fixed_fields: ClassVar[tuple[str, ...]] = ("settle_seconds",)

    @abstractmethod
    def list_files(self) -> list[LandingFile]: ...

    @abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def describe(self) -> str: ...

    def layout_files(self) -> list[tuple[str, bytes]]:
        """The source layouts (name, bytes) that say how the landing files of each source are read; none: the seed's layout."""
        return []

    def layouts(self) -> Layouts:
        return load_layouts(self.layout_files())

    def stat(self, name: str) -> LandingFile | None:
        """The file as ``list_files`` would list it now (None if it is gone); a subclass may look at it alone."""
        return next((f for f in self.list_files() if f.name == name), None)

    def take(
        self,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
    ) -> list[Taken]:
        """Every landing file, read if it is settled, else deferred with the reason (see ``settle``).

        A file changed within the settle interval is waited for once (at most the interval), then looked at
        again; one still changing is deferred. Each file read is looked at again after the read: one that
        changed meanwhile is deferred too, so a run never loads a version nobody finished writing.
        """
        files = self.list_files()
        candidates = [f for f in files if not f.refusal]
        wait = wait_for(candidates, now(), self.settle_seconds)
        deferred: dict[str, str] = {}
        if wait > 0:
            young = [f.name for f in candidates if not is_settled(f, now(), self.settle_seconds)]
            log(
                f"Waiting {wait:.1f} s for {', '.join(young)} to be unchanged for {self.settle_seconds:g} s (still being written?)"
            )
            sleep(wait)
            again = {f.name: f for f in self.list_files()}
            for name in young:
                before = next(f for f in candidates if f.name == name)
                if not same_version(before, again.get(name)):
                    deferred[name] = changed_reason(before, again.get(name), f"during the {self.settle_seconds:g} s settle wait")
        taken: list[Taken] = []
        for file in files:
            if file.refusal:
                taken.append(Taken(file))
            elif file.name in deferred:
                taken.append(Taken(file, deferred=deferred[file.name]))
            else:
                try:
                    data = self.read_bytes(file.name)
                except FileNotFoundError:  # removed since it was listed: like a change, taken by a later run if it returns
                    taken.append(Taken(file, deferred=changed_reason(file, None, "before it was read")))
                    continue
                reason = read_changed_reason(file, self.stat(file.name), len(data))
                taken.append(Taken(file, deferred=reason) if reason else Taken(file, data=data))
        return taken


class LocalLandingZone(LandingZone):
    """Drops in ``<data_dir>/landing``. The engine never moves or deletes a drop; it records what it read."""

    data_dir: str

    @property
    def landing_dir(self) -> Path:
        return Path(self.data_dir) / "landing"

    def describe(self) -> str:
        return str(self.landing_dir)

    @property
    def sources_dir(self) -> Path:
        return Path(self.data_dir) / "sources"

    def layout_files(self) -> list[tuple[str, bytes]]:
        return read_layout_folder(self.sources_dir)

    def list_files(self) -> list[LandingFile]:
        if not self.landing_dir.is_dir():
            # an empty list would look like "every client left": say what is wrong instead
            raise FileNotFoundError(
                f"The landing folder {self.landing_dir} does not exist. Set CRM_DATA_DIR to the data folder that "
                "holds landing/ and reference/ (or create landing/ there)."
            )
        paths = sorted(self.landing_dir.iterdir())
        # a sub-folder is looked into only when a source layout owns it (other folders are no drops, as before)
        for folder in sorted(self.layouts().folders):
            sub = self.landing_dir / folder
            if sub.is_dir() and not sub.is_symlink():
                paths += sorted(sub.iterdir())
        entries = (self._entry(path, self.landing_dir) for path in paths)
        return [entry for entry in entries if entry is not None]

    def stat(self, name: str) -> LandingFile | None:
        path = self.landing_dir / name
        return self._entry(path, self.landing_dir) if os.path.lexists(path) else None

    @staticmethod
    def _entry(path: Path, landing_dir: Path) -> LandingFile | None:
        """A directory entry as a landing file, or None if it is not a drop (hidden, partial, a folder).

        A file in a layout's sub-folder is named ``folder/file``."""
        folder = "" if path.parent == landing_dir else f"{path.parent.name}/"
        name = folder + readable_name(path.name)
        if not _is_candidate(readable_name(path.name)):
            return None
        stat = path.lstat()  # the entry itself: a link is judged as a link, never followed
        modified = pd.Timestamp(stat.st_mtime_ns, unit="ns", tz="UTC")
        if path.is_symlink():
            return LandingFile(name, 0, modified, refusal=SYMLINK_REFUSAL)
        if not path.is_file():
            return None  # folders and devices are not drops
        if name != folder + path.name:
            return LandingFile(name, stat.st_size, modified, refusal=NON_UTF8_NAME_REFUSAL)
        return LandingFile(name, stat.st_size, modified)

    def read_bytes(self, name: str) -> bytes:
        # O_NOFOLLOW: a drop swapped for a link after it was listed is refused, not followed
        fd = os.open(self.landing_dir / name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
