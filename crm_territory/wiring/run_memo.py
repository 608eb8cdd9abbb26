"""A value one step of a run computes and a later step of the same run needs again: handed over, not recomputed.

``client_records`` (the latest version of each source record, canonicalised) is what both ``client_xref`` and
``client_dim`` start from; at a million records it costs several seconds and a gigabyte. The run's steps share
one process (the in-process executor of ``defs/resources.py``), so the first step leaves it here and the second
takes it.

A value is handed over only to the same run, under the same fingerprint of what it was computed from (the
reference tables, say): anything else (another run, the reference files edited between the two steps, a step
re-executed on its own) is a miss, and the taker computes the value itself, with the same answer. A taken
value is gone from here, and a run's values are dropped when a later run stores one: nothing is held longer
than the run that needs it.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_values: dict[tuple[str, str], tuple[str, Any]] = {}


def hand_over(run_id: str, name: str, fingerprint: str, value: Any) -> None:
    """Keep ``value`` for a later step of run ``run_id`` that asks for ``name`` with the same ``fingerprint``."""
    with _lock:
        for key in [key for key in _values if key[0] != run_id]:  # an earlier run's leftovers (it never took them)
            del _values[key]
        _values[(run_id, name)] = (fingerprint, value)


def take(run_id: str, name: str, fingerprint: str) -> Any | None:
    """The value handed over for ``name`` in this run under ``fingerprint``, removed from here; else None."""
    with _lock:
        kept = _values.pop((run_id, name), None)
    if kept is None or kept[0] != fingerprint:
        return None
    return kept[1]


def held() -> int:
    """How many values are held (for tests)."""
    with _lock:
        return len(_values)
