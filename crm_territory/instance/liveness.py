"""Is the process that started a run still alive, and still that process? Plain functions over /proc, no Dagster.

A run records the pid of its worker (for ``python -m crm_territory.cli run``, the CLI itself) and the time it
started. A pid alone is not enough: once the worker is gone the kernel may hand its pid to an unrelated process.
On Linux the process's start time (``/proc/<pid>/stat``) tells them apart: the worker started before the run did,
a process that reuses its pid started after the worker died. Elsewhere only "a process has this pid" can be
known, so a reused pid there reads as alive: the run stays STARTED (as before), it is never failed by mistake.

A pid means something only on the machine, and in the pid namespace, where it was taken: ``HostIdentity`` names
them, so a checker on another host (or container) says it cannot tell rather than "gone".
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")

# How much later than the run's start a process with the worker's pid may appear to have started and still be
# taken for the worker. /proc gives the start in ticks since boot and the boot time in whole seconds, and the wall
# clock may have been stepped since: a little slack keeps a live worker from being called dead (the costly
# mistake), while a pid reused within seconds of the run's start would need the pid space to wrap around.
START_TIME_SLACK_SECONDS = 10.0


class WorkerState(enum.Enum):
    ALIVE = "alive"  # the process that started the run is still running
    GONE = "gone"  # no process has that pid any more (a zombie counts as gone: it has exited)
    PID_REUSED = "pid reused"  # a process has the pid, but it started after the run did: the worker is gone


@dataclass(frozen=True)
class HostIdentity:
    """Where a pid is meaningful: the host name, this boot of its kernel, and the pid namespace."""

    hostname: str
    boot_id: str
    pid_namespace: str

    def to_tag(self) -> str:
        return f"{self.hostname}|{self.boot_id}|{self.pid_namespace}"

    @staticmethod
    def from_tag(value: str) -> HostIdentity | None:
        parts = value.split("|")
        return HostIdentity(*parts) if len(parts) == 3 else None


def this_host(proc: Path = PROC) -> HostIdentity:
    """The identity of the running process's host; boot id and namespace are empty where /proc has none."""
    try:
        boot_id = (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    try:
        pid_namespace = os.readlink(proc / "self" / "ns" / "pid")  # e.g. "pid:[4026531836]"
    except OSError:
        pid_namespace = ""
    return HostIdentity(socket.gethostname(), boot_id, pid_namespace)


def _boot_time(proc: Path) -> float | None:
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _stat(pid: int, proc: Path) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of ``pid``, or None when /proc has no such process."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ... starttime ...": comm may hold spaces and parentheses, so cut at the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def process_start_time(pid: int, proc: Path = PROC) -> float | None:
    """When ``pid`` started, in epoch seconds (Linux /proc), or None if that cannot be read."""
    stat = _stat(pid, proc)
    boot = _boot_time(proc)
    if stat is None or boot is None:
        return None
    return boot + stat[1] / os.sysconf("SC_CLK_TCK")


def worker_state(pid: int, run_started_at: float, proc: Path = PROC) -> WorkerState:
    """Whether the process that started a run at ``run_started_at`` (epoch seconds) with ``pid`` still runs."""
    if pid <= 0:
        return WorkerState.GONE
    stat = _stat(pid, proc)
    boot = _boot_time(proc)
    if stat is None or boot is None:
        # No /proc (not Linux), or /proc hides other users' processes (hidepid): existence is all we can know.
        return WorkerState.ALIVE if _pid_exists(pid) else WorkerState.GONE
    state, start_ticks = stat
    if state in ("Z", "X"):  # exited, not yet reaped by its parent
        return WorkerState.GONE
    started = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    if started > run_started_at + START_TIME_SLACK_SECONDS:
        return WorkerState.PID_REUSED
    return WorkerState.ALIVE
