"""``make run`` on a scratch data folder holding a drop of N clients: the whole command, timed in a fresh process.

What ``make run`` executes (``python -m crm_territory.cli run --start-mock-api``, the Makefile's recipe once the
venv is installed: a warm venv), with ``CRM_DATA_DIR`` pointing at ``.bench/makerun<N>/data`` (``reference/``,
``rules/`` and the bench's ``landing/clients.csv`` of N clients, copied with its times) and ``DAGSTER_HOME`` at
``.bench/makerun<N>/dagster_home`` (the runs stay out of the repository's instance). The mock CRM API serves its
default book (2,000 clients), as in ``make run``. Before each run the folder's outputs and the instance are removed, so
every run is a first run, as on a fresh clone whose venv is installed (and as the bench's end-to-end runs are).

Per run: the whole command's wall time (interpreter start-up, imports, the mock API's start and stop, the run, the
summary), the Dagster run's time as the command prints it (``... (materialize_all_job): SUCCESS ... in 6.5s``), and
the sampled peak RSS of the command with its mock API (the memory guard's samples).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from crm_territory_tests.benchmarks.guard import DEFAULT_LIMIT_GB, run_guarded

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^crm-territory run \S+ \((?P<job>\w+)\): (?P<status>[A-Z]+).* in (?P<seconds>[0-9.]+)s$", re.M)
KEEP = ("reference", "rules", "landing")


def run_seconds(stdout: str) -> tuple[str, str, float] | None:
    """(job, status, seconds) from the summary ``cli run`` prints; None when it printed none."""
    found = SUMMARY.search(stdout)
    if found is None:
        return None
    return found["job"], found["status"], float(found["seconds"])


def prepare(source: Path, folder: Path) -> Path:
    """``folder``/data with the inputs of ``source`` (a bench size's data folder); returns the data folder."""
    data = folder / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for name in KEEP:
        if (source / name).is_dir():
            shutil.copytree(source / name, data / name)  # copy2: the drop keeps its mtime (no settle wait)
    return data


def reset(data: Path, home: Path) -> None:
    """Only the inputs left, and no instance: the next run is a first run (the run guards would otherwise refuse
    a data folder emptied under an instance that remembers its tables)."""
    for child in data.iterdir():
        if child.name not in KEEP:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if home.exists():
        shutil.rmtree(home)


def steps_of_last_run(home: Path) -> dict[str, float]:
    """Wall seconds per step of the latest run in the instance at ``home`` (from its event log), slowest first."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef  # not re-exported by dagster

    from crm_territory_tests.benchmarks.bench import _step_seconds

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        steps = _step_seconds(instance, runs[0].run_id)
    return dict(sorted(steps.items(), key=lambda kv: -kv[1]))


def measure(
    source: Path,
    folder: Path,
    repeats: int = 3,
    log: Callable[[str], None] = print,
    limit_mb: float = DEFAULT_LIMIT_GB * 1000,
    timeout_s: float = 1800,
) -> dict:
    """{"whole": [s], "run": [s], "rss": [MB], "job": name, "steps": [{step: s}]}: ``repeats`` runs of the command on a
    copy of ``source``; the step times read from the run's instance after each run."""
    folder = folder.resolve()
    data = prepare(source, folder)
    home = folder / "dagster_home"  # Dagster wants it absolute
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(
        {
            "CRM_DATA_DIR": str(data),
            "CRM_STORAGE": "local",
            "DAGSTER_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.pop("CRM_API_TOKEN", None)  # the command makes one for the mock API it starts
    env.pop("CRM_API_URL", None)
    result: dict = {"whole": [], "run": [], "rss": [], "job": None}
    for i in range(1, repeats + 1):
        reset(data, home)
        done = run_guarded(
            [sys.executable, "-m", "crm_territory.cli", "run", "--start-mock-api"],
            cwd=REPO_ROOT,
            env=env,
            label=f"make run, run {i}",
            limit_mb=limit_mb,
            timeout_s=timeout_s,
        )
        parsed = run_seconds(done.stdout)
        if done.returncode != 0 or parsed is None or parsed[1] != "SUCCESS":
            tail = (done.stdout + done.stderr)[-2000:]
            raise RuntimeError(f"make run, run {i}: exit {done.returncode}:\n{tail}")
        result["job"] = parsed[0]
        result["whole"].append(done.seconds)
        result["run"].append(parsed[2])
        result["rss"].append(done.sampled_peak_mb)
        try:
            result.setdefault("steps", []).append(steps_of_last_run(home))
        except Exception as exc:  # noqa: BLE001 (the step times explain the figure; they are not the figure)
            log(f"(step times not read from the run's instance: {exc!r})")
        log(
            f"make run     run {i}/{repeats}: {done.seconds:7.2f}s whole, {parsed[2]:.1f}s {parsed[0]}, peak RSS {done.sampled_peak_mb:,.0f} MB (sampled)"
        )
    return result
