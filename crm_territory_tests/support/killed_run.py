"""``python -m crm_territory_tests.support.killed_run POINT [N]``: a real ``cli run`` that SIGKILLs itself at POINT.

The fault suite's controlled kills. Nothing of the engine is replaced: the real functions run, and
the process kills itself (SIGKILL: no ``finally``, no teardown, no flush) at the N-th time it reaches

- ``staged``    a table was written to the run's staging folder (N: after the N-th table);
- ``committed`` the commit record is on disk, before any staged file is moved into place;
- ``moved``     a staged file was moved over its published path (N: after the N-th move);
- ``manifest``  every file is moved and published.json written, before the staging folder is removed.

The environment is the CLI's (CRM_DATA_DIR, CRM_API_URL, CRM_API_TOKEN, DAGSTER_HOME).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from crm_territory import cli
from crm_territory.storage import csv_set

POINTS = ("staged", "committed", "moved", "manifest")


def kill_after(
    point: str, n: int, fn: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True, before: bool = False
):
    """``fn``, which SIGKILLs this process right after (``before``: instead of) its N-th call for which ``when`` holds."""
    seen = 0

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if when(*args, **kwargs):
            seen += 1
        if before and seen == n:
            _die(point, n)
        result = fn(*args, **kwargs)
        if seen == n:
            _die(point, n)
        return result

    return wrapped


def _die(point: str, n: int) -> None:
    print(f"killed_run: SIGKILL at {point} #{n}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, n: int) -> None:
    if point == "staged":
        csv_set.CsvTableSet.stage = kill_after(point, n, csv_set.CsvTableSet.stage)
    elif point == "committed":
        csv_set._write_json_atomically = kill_after(
            point, n, csv_set._write_json_atomically, lambda path, _: path.name == csv_set.COMMIT_RECORD
        )
    elif point == "moved":
        # os.replace is also how a staged file, the commit record and published.json are written: count only the
        # moves out of a staging folder into the published tree
        staging = f"{os.sep}{csv_set.STAGING_DIR}{os.sep}"
        real_os = csv_set.os

        class _Os:
            def __getattr__(self, name: str) -> Any:
                return getattr(real_os, name)

            replace = staticmethod(
                kill_after(point, n, real_os.replace, lambda src, dst: staging in str(src) and staging not in str(dst))
            )

        csv_set.os = _Os()  # the module looks os.replace up at call time
    elif point == "manifest":
        # shutil is the process-wide module: count only the removal of a staging folder
        csv_set.shutil.rmtree = kill_after(
            point, n, csv_set.shutil.rmtree, lambda path, *a, **k: csv_set.STAGING_DIR in str(path), before=True
        )
    else:
        raise SystemExit(f"unknown point {point!r}; one of {', '.join(POINTS)}")


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    sys.exit(cli.main(["run"]))
