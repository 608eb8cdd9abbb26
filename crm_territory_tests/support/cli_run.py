"""The environment of a ``python -m crm_territory.cli run`` subprocess (what ``make run`` executes)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from crm_territory_tests.support import REPO_ROOT

__all__ = ["cli_run_env"]


def cli_run_env(
    data_dir: Path,
    dagster_home: Path,
    api_url: str | None = None,
    token: str | None = None,
    *,
    drop_prefixes: tuple[str, ...],
    drop: Collection[str] = (),
) -> dict[str, str]:
    """This process's environment without the variables named in ``drop`` or starting with one of ``drop_prefixes``
    (so the outer environment cannot change the run), pointed at ``data_dir`` and ``dagster_home``; with
    ``CRM_API_URL`` and ``CRM_API_TOKEN`` only when given.
    """
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(drop_prefixes)}
    env.update(CRM_DATA_DIR=str(data_dir), DAGSTER_HOME=str(dagster_home))
    if api_url is not None:
        env["CRM_API_URL"] = api_url
    if token is not None:
        env["CRM_API_TOKEN"] = token
    env.update(
        # the checkout first, so the command runs this tree's code
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    return env
