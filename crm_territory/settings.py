"""Where the engine reads and writes, from the environment, read when definitions are built (never at import).

CRM_DATA_DIR   the data folder (default: ``data/`` in the repository); landing/, reference/, raw/,
               core/ and quarantine/ all live under it, so one variable moves everything.
CRM_STORAGE    ``local`` (CSV under CRM_DATA_DIR; the default) or ``snowflake`` (tables in RAW and CORE;
               credentials from the SNOWFLAKE_* variables below, read by the resources at run time).
CRM_API_URL    the CRM API's base URL (default http://127.0.0.1:8765, the mock API of ``make run``).
CRM_API_TOKEN  the CRM API's bearer token; read by the resource at run time, never logged.
CRM_LOCK_WAIT_SECONDS  how long a run waits for another run writing the same data folder (default 300).
CRM_LANDING_SETTLE_SECONDS  a landing file is taken once unchanged for this long (default 15; see
               ``crm_territory.logic.ingest.settle``).
CRM_CHANGE_FEED_INTERVAL_SECONDS  how often the change-feed sensor polls the CRM (whole seconds, default 30).
CRM_PREVIEW_TIME_LIMIT_SECONDS    the most a candidate rules preview may take (default 120; a run's config
               ``ops.assignments_preview.config.time_limit_seconds`` overrides it for that run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STORAGE_BACKENDS = ("local", "snowflake")

# Snowflake connection, from the environment only. Authentication: a key pair (the service user
# Terraform creates) or a password (a person trying it out); one of the two must be set.
SNOWFLAKE_REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_DATABASE", "SNOWFLAKE_WAREHOUSE")
SNOWFLAKE_AUTH = ("SNOWFLAKE_PRIVATE_KEY_PATH", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PASSWORD")
SNOWFLAKE_OPTIONAL = ("SNOWFLAKE_ROLE", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")

# 15 s: longer than the pauses of a writer that flushes as its buffer fills (the probe's 80 s writer
# flushed an 8 KB buffer every several seconds) or of a copy over a slow share, short enough that a
# run finding a fresh drop waits for it (at most this long, once) instead of deferring it, and well
# under the drop sensor's 30 s tick. A writer pausing longer must write ``x.part`` and rename it.
DEFAULT_LANDING_SETTLE_SECONDS = 15.0
DEFAULT_CHANGE_FEED_INTERVAL_SECONDS = 30  # an edit in the CRM is re-placed within a minute; a quiet tick is one request
# The preview of a sound candidate costs about what territory_dim + assignments_fact cost: well under a minute at a
# million clients (docs/performance.md). 120 s leaves that room on a busy machine and bounds what a hostile or
# runaway candidate can add to a production run.
DEFAULT_PREVIEW_TIME_LIMIT_SECONDS = 120.0


class SettingsError(ValueError):
    """The environment does not describe a usable configuration; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    storage: str
    api_url: str
    lock_wait_seconds: float = 300.0
    landing_settle_seconds: float = DEFAULT_LANDING_SETTLE_SECONDS
    change_feed_interval_seconds: int = DEFAULT_CHANGE_FEED_INTERVAL_SECONDS
    preview_time_limit_seconds: float = DEFAULT_PREVIEW_TIME_LIMIT_SECONDS

    @classmethod
    def from_env(cls) -> Settings:
        storage = os.environ.get("CRM_STORAGE", "local").strip().lower() or "local"
        if storage not in STORAGE_BACKENDS:
            raise SettingsError(f"CRM_STORAGE={storage!r} is not supported; choose one of {', '.join(STORAGE_BACKENDS)}")
        if storage == "snowflake":
            check_snowflake_environment()
        data_dir = Path(os.environ.get("CRM_DATA_DIR") or REPO_ROOT / "data").expanduser().resolve()
        api_url = os.environ.get("CRM_API_URL", "http://127.0.0.1:8765").rstrip("/")
        wait = os.environ.get("CRM_LOCK_WAIT_SECONDS", "300")
        try:
            lock_wait_seconds = float(wait)
        except ValueError:
            raise SettingsError(f"CRM_LOCK_WAIT_SECONDS={wait!r} is not a number of seconds") from None
        return cls(
            data_dir=data_dir,
            storage=storage,
            api_url=api_url,
            lock_wait_seconds=lock_wait_seconds,
            landing_settle_seconds=_seconds("CRM_LANDING_SETTLE_SECONDS", DEFAULT_LANDING_SETTLE_SECONDS),
            change_feed_interval_seconds=_whole_seconds("CRM_CHANGE_FEED_INTERVAL_SECONDS", DEFAULT_CHANGE_FEED_INTERVAL_SECONDS),
            preview_time_limit_seconds=_seconds(
                "CRM_PREVIEW_TIME_LIMIT_SECONDS", DEFAULT_PREVIEW_TIME_LIMIT_SECONDS, positive=True
            ),
        )

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def reference_dir(self) -> Path:
        return self.data_dir / "reference"


def _seconds(name: str, default: float, positive: bool = False) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf") or (positive and value == 0):
        raise SettingsError(f"{name}={text!r}: give a number of seconds, {'more than 0' if positive else '0 or more'}")
    return value


def _whole_seconds(name: str, default: int) -> int:
    """A sensor interval: Dagster takes whole seconds, and 0 would poll without pause."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number of seconds") from None
    if value < 1:
        raise SettingsError(f"{name}={text!r}: give a number of seconds, 1 or more")
    return value


def check_snowflake_environment() -> None:
    """Fail at definitions load, naming every missing variable, rather than half-way through a run."""
    missing = [name for name in SNOWFLAKE_REQUIRED if not os.environ.get(name)]
    if not any(os.environ.get(name) for name in SNOWFLAKE_AUTH):
        missing.append(" or ".join(SNOWFLAKE_AUTH))
    if missing:
        raise SettingsError(
            "CRM_STORAGE=snowflake needs these environment variables, which are not set: "
            + ", ".join(missing)
            + ". See README, 'Run on Snowflake'."
        )


# The settings the definitions being loaded use: set by ``definitions.build_definitions`` around the
# load, so that ``defs/resources.py`` builds its resources from them (and not from a second read of
# the environment that could disagree with the first).
_loading: ContextVar[Settings | None] = ContextVar("crm_territory_settings", default=None)


@contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    token = _loading.set(settings)
    try:
        yield settings
    finally:
        _loading.reset(token)


def load_settings() -> Settings:
    """The settings of the definitions being loaded (``using_settings``), else the environment's."""
    return _loading.get() or Settings.from_env()
