"""Where the engine reads and writes, from the environment, read when definitions are built (never at import).

CRM_DATA_DIR   the data folder (default: ``data/`` in the repository); landing/, reference/, raw/,
               core/ and quarantine/ all live under it, so one variable moves everything.
CRM_STORAGE    ``local`` (CSV under CRM_DATA_DIR; the default). Other back-ends plug in beside it.
CRM_API_URL    the CRM API's base URL (default http://127.0.0.1:8765, the mock API of ``make run``).
CRM_API_TOKEN  the CRM API's bearer token; read by the resource at run time, never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STORAGE_BACKENDS = ("local",)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    storage: str
    api_url: str

    @classmethod
    def from_env(cls) -> "Settings":
        storage = os.environ.get("CRM_STORAGE", "local").strip().lower() or "local"
        if storage not in STORAGE_BACKENDS:
            raise ValueError(f"CRM_STORAGE={storage!r} is not supported; choose one of {', '.join(STORAGE_BACKENDS)}")
        data_dir = Path(os.environ.get("CRM_DATA_DIR") or REPO_ROOT / "data").expanduser().resolve()
        api_url = os.environ.get("CRM_API_URL", "http://127.0.0.1:8765").rstrip("/")
        return cls(data_dir=data_dir, storage=storage, api_url=api_url)

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def reference_dir(self) -> Path:
        return self.data_dir / "reference"
