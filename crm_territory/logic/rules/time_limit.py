"""Run a function in a child process that is killed at a deadline: a time limit that stops the work.

A thread cannot be stopped in Python, and waiting on one with a timeout only stops the waiting: the
work goes on spinning in the run process, holding a core and memory until the run ends (or forever,
for a hostile input). A child process can be killed.

The child is a fresh interpreter (``python -m crm_territory.logic.rules.time_limit``), given the
function and its arguments by pickle on stdin and answering on stdout. Not ``multiprocessing``:
``fork`` would copy the run process's threads' held locks (Dagster's, Arrow's and HiGHS's pools) and
its open files (the data folder's writer lock) into the child, and ``spawn``/``forkserver`` re-run the
main module in the child, which re-runs a script that calls the pipeline without the
``if __name__ == "__main__"`` idiom. The price is one interpreter start and the imports (~1 s).

Two backstops for a run process that dies while its child works: the child asks the kernel for
SIGKILL when its parent goes, and it runs under a CPU-time limit a little above the budget.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import pickle
import resource
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# CPU seconds beyond the budget before the kernel stops an orphaned child: imports, handing back the result
_CPU_GRACE_SECONDS = 10
# what the parent shows of the child's stderr when it fails
_STDERR_SHOWN = 4000


class TimeLimitExceeded(Exception):
    """The function did not finish within ``seconds``; its process (``pid``) was killed."""

    def __init__(self, seconds: float, pid: int):
        self.seconds = seconds
        self.pid = pid
        super().__init__(f"did not finish within {seconds:g} s; stopped")


class ChildFailed(RuntimeError):
    """The function raised in the child (or the child died): its error and traceback, as text.

    As text because not every exception pickles (one whose ``__init__`` takes other arguments than
    its message does not), and the parent only has to report it.
    """

    def __init__(self, error: str, details: str = ""):
        self.error = error
        self.details = details
        super().__init__(error)


def run_with_time_limit(fn: Callable[..., _T], args: tuple[Any, ...], seconds: float) -> _T:
    """``fn(*args)`` in a child process; its result, or ``TimeLimitExceeded`` after ``seconds`` (the child killed).

    ``fn``, ``args`` and the result travel by pickle: ``fn`` must be a module-level function.
    """
    # the child gets the parent's import path first, so that it can unpickle what names a module
    payload = pickle.dumps((list(sys.path), pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)), pickle.HIGHEST_PROTOCOL)
    # CPU time runs faster than the clock on several cores (Arrow's threads): the backstop must never come first
    cpu_seconds = math.ceil(seconds * (os.cpu_count() or 1)) + _CPU_GRACE_SECONDS
    command = [sys.executable, "-m", __name__, str(os.getpid()), str(cpu_seconds)]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(payload, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise TimeLimitExceeded(seconds, child.pid) from None
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()  # reap it, close the pipes
    try:
        status, *answer = pickle.loads(out)
    except Exception:  # killed (out of memory?) or crashed before answering
        tail = err.decode("utf-8", "replace")[-_STDERR_SHOWN:]
        raise ChildFailed(f"the child process ended (exit code {child.returncode}) without an answer", tail) from None
    if status == "error":
        raise ChildFailed(*answer)
    return answer[0]


def _child_main(parent: int, cpu_seconds: int) -> None:
    _die_with(parent)
    with contextlib.suppress(ValueError, OSError):  # a hard limit already lower: keep it
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then SIGKILL
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what anything prints goes to stderr, never into the answer
    try:
        path, inner = pickle.load(sys.stdin.buffer)
        sys.path[:] = path
        fn, args = pickle.loads(inner)
        data = pickle.dumps(("ok", fn(*args)), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # reported to the parent, whatever it is (a result that does not pickle too)
        data = pickle.dumps(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()), pickle.HIGHEST_PROTOCOL)
    answer.write(data)
    answer.close()


def _die_with(parent: int) -> None:
    """SIGKILL from the kernel when the parent exits (Linux); elsewhere the CPU limit stays the backstop."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent was gone before the request: nobody will read the answer
        os._exit(1)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
