"""The Dagster code location: everything under ``crm_territory/defs/``, loaded the ``dg`` way.

The environment (CRM_DATA_DIR, CRM_STORAGE, CRM_API_URL) is read when the definitions load, inside
``defs()``, never at import time. ``build_definitions(settings)`` loads the same folder with explicit
settings (the CLI, the tests and the benchmark use it).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crm_territory.settings import Settings, using_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every definition in ``defs/``; its resources built from ``settings`` (the environment when None)."""
    if settings is None:
        settings = Settings.from_env()
    with using_settings(settings):
        return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
