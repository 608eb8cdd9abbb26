"""A memory guard for benchmark children: run a command, poll its resident set, kill it above a limit.

``run_guarded`` starts the command in its own process group, samples the RSS of the process and its
descendants (``/proc/<pid>/status`` VmRSS, summed over the tree) every ``poll_s`` seconds, and kills the group
when the sum exceeds ``limit_mb``, raising ``GuardKilled`` with what the bench prints as the measured figure:
"did not complete: killed at X GB after Y s in step Z". The step is the last ``STEP_START`` the child wrote to
its progress file (one JSON object a line: ``{"event": "start" | "end", "step": key, "t": unix seconds}``),
so the sampled peak is also attributed to the step running at the time (``Guarded.rss_by_step``).

Linux only for the sampling (``/proc``); elsewhere the command runs unguarded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LIMIT_GB = 12.0
POLL_SECONDS = 0.5


def guard_report(rss_mb: float, seconds: float, step: str | None) -> str:
    """The measured figure of a run the guard killed, as the targets table prints it."""
    where = f" in step {step}" if step else " before the first step"
    return f"did not complete: killed at {rss_mb / 1000:.1f} GB after {seconds:.0f} s{where}"


class GuardKilled(RuntimeError):
    """The guard killed the child: its sampled RSS went above the limit."""

    def __init__(self, label: str, rss_mb: float, seconds: float, step: str | None, limit_mb: float) -> None:
        self.label, self.rss_mb, self.seconds, self.step, self.limit_mb = label, rss_mb, seconds, step, limit_mb
        super().__init__(f"{label}: {self.report} (guard limit {limit_mb / 1000:.1f} GB)")

    @property
    def report(self) -> str:
        return guard_report(self.rss_mb, self.seconds, self.step)


@dataclass
class Guarded:
    """What a guarded child left: exit code, its output, and the guard's samples."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    sampled_peak_mb: float = 0.0
    rss_by_step: dict[str, float] = field(default_factory=dict)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found += [int(p) for p in handle.read().split()]
        except OSError:
            continue
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident set of ``pid`` and every descendant, MB = 10^6 bytes (0 when it is gone)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss_mb(current)
        todo += _children(current)
    return total


def current_step(progress: Path | None) -> str | None:
    """The step a progress file says is running (the last started and not ended), else the last started."""
    if progress is None or not progress.is_file():
        return None
    running: list[str] = []
    last = None
    for line in progress.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written
        if entry.get("event") == "start":
            running.append(entry["step"])
            last = entry["step"]
        elif entry.get("event") == "end" and entry.get("step") in running:
            running.remove(entry["step"])
    return running[-1] if running else last


def step_seconds_from_progress(progress: Path | None) -> dict[str, float]:
    """Seconds of every step that ended, from a progress file (what is left of a killed run's step times)."""
    if progress is None or not progress.is_file():
        return {}
    started: dict[str, float] = {}
    done: dict[str, float] = {}
    for line in progress.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "start":
            started.setdefault(entry["step"], entry["t"])
        elif entry.get("event") == "end" and entry.get("step") in started:
            done[entry["step"]] = round(entry["t"] - started[entry["step"]], 3)
    return done


def run_guarded(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    label: str,
    limit_mb: float,
    timeout_s: float,
    progress: Path | None = None,
    poll_s: float = POLL_SECONDS,
) -> Guarded:
    """Run ``command`` to its end under the guard; raise ``GuardKilled`` or ``subprocess.TimeoutExpired``."""
    sampling = Path("/proc/self/status").is_file()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out, tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=out, stderr=err, start_new_session=True)
        peak, by_step = 0.0, {}
        try:
            while True:
                try:
                    returncode = proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.perf_counter() - started
                if sampling:
                    rss = tree_rss_mb(proc.pid)
                    peak = max(peak, rss)
                    step = current_step(progress)
                    if step is not None:
                        by_step[step] = max(by_step.get(step, 0.0), rss)
                    if rss > limit_mb:
                        _kill_group(proc)
                        raise GuardKilled(label, rss, elapsed, step, limit_mb)
                if elapsed > timeout_s:
                    _kill_group(proc)
                    raise subprocess.TimeoutExpired(list(command), timeout_s)
        except BaseException:
            _kill_group(proc)  # Ctrl-C on the bench must not leave a 10 GB child behind
            raise
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Guarded(returncode, out.read(), err.read(), seconds, peak, by_step)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
